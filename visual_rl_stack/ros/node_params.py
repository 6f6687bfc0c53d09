"""Declare ROS parameters with descriptors and ranges, and reject bad values clearly."""

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.node import Node
from rclpy.parameter import Parameter

from .msg_conversions import make_pose, pose_to_matrix
from .topics import WORLD_FRAME


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: default value, description, optional numeric range or choices."""

    default: Any
    description: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Optional[tuple] = None
    read_only: bool = False

    def descriptor(self, name: str) -> ParameterDescriptor:
        """Build the ``ParameterDescriptor`` shown by ``ros2 param describe``."""
        text = self.description
        if self.choices:
            text += f' One of: {", ".join(map(str, self.choices))}.'
        desc = ParameterDescriptor(name=name, description=text, read_only=self.read_only)
        if self.low is not None and self.high is not None:
            if isinstance(self.default, bool) or not isinstance(self.default, (int, float)):
                raise TypeError(f'parameter {name}: a range needs a numeric default')
            if isinstance(self.default, int):
                desc.integer_range = [IntegerRange(from_value=int(self.low),
                                                   to_value=int(self.high), step=0)]
            else:
                desc.floating_point_range = [FloatingPointRange(
                    from_value=float(self.low), to_value=float(self.high), step=0.0)]
        return desc

    def problem(self, name: str, value: Any) -> Optional[str]:
        """Return why ``value`` is not acceptable, or None when it is."""
        if self.choices is not None and value not in self.choices:
            return f'{name}={value!r} is not one of {list(self.choices)}'
        if self.low is not None and isinstance(value, (int, float)) and not (
                self.low <= value <= self.high):
            return f'{name}={value!r} is outside [{self.low}, {self.high}]'
        return None


def declare_params(node: Node, specs: dict[str, ParamSpec],
                   on_change: Optional[Callable[[dict[str, Any]], Optional[str]]] = None
                   ) -> dict[str, Any]:
    """
    Declare ``specs`` on ``node`` and return their current values.

    Raises ValueError naming every invalid value found at start-up (from YAML
    or overrides). Later ``set_parameters`` calls are checked the same way and
    refused with the reason; ``on_change`` may refuse too by returning a reason.
    """
    problems = []
    for name, spec in specs.items():
        try:
            node.declare_parameter(name, spec.default, spec.descriptor(name))
        except (InvalidParameterTypeException, InvalidParameterValueException) as error:
            # rclpy refuses an override outside the descriptor's range or of another type.
            problems.append(f'{name}: {error}')
    if problems:
        raise ValueError(f'{node.get_name()}: invalid parameters: ' + '; '.join(problems))
    values = {name: node.get_parameter(name).value for name in specs}
    problems = [p for name, spec in specs.items() if (p := spec.problem(name, values[name]))]
    if problems:
        raise ValueError(f'{node.get_name()}: invalid parameters: ' + '; '.join(problems))

    def check(params: list[Parameter]) -> SetParametersResult:
        changed = {p.name: p.value for p in params if p.name in specs}
        reasons = [r for n, v in changed.items() if (r := specs[n].problem(n, v))]
        if not reasons and on_change is not None and changed:
            reason = on_change(changed)
            reasons = [reason] if reason else []
        return SetParametersResult(successful=not reasons, reason='; '.join(reasons))

    node.add_on_set_parameters_callback(check)
    return values


def declare_extrinsics(node: Node, cameras: Sequence[str]) -> dict[str, np.ndarray]:
    """
    Declare and read ``extrinsics.<cam>`` = [x, y, z, qx, qy, qz, qw] as 4x4 world poses.

    For graphs whose cameras publish no pose topic (real drivers): the poses
    come from calibration. Raises ValueError for a missing or malformed one.
    """
    extrinsics = {}
    for camera in cameras:
        name = f'extrinsics.{camera}'
        node.declare_parameter(name, Parameter.Type.DOUBLE_ARRAY, ParameterDescriptor(
            description=f'Pose of the {camera} optical frame in {WORLD_FRAME}: '
                        '[x, y, z, qx, qy, qz, qw].', read_only=True))
        try:
            value = list(node.get_parameter(name).value)
        except ParameterUninitializedException:
            value = []
        quaternion = np.asarray(value[3:], dtype=float)
        if len(value) != 7 or not np.linalg.norm(quaternion) > 1e-6:
            raise ValueError(f'{node.get_name()}: use_pose_topics is false, so {name} must be '
                             f'[x, y, z, qx, qy, qz, qw] with a non-zero quaternion; '
                             f'got {value}')
        extrinsics[camera] = pose_to_matrix(
            make_pose(value[:3], quaternion / np.linalg.norm(quaternion)))
    return extrinsics


def configure_or_destroy(node: Node, configure: Callable[[], None]) -> None:
    """Run ``configure``; on an error destroy the half-built node, so nothing keeps running."""
    try:
        configure()
    except Exception:
        node.destroy_node()
        raise


def distinct_names(node_name: str, what: str, names: Sequence[str]) -> list[str]:
    """Return ``names`` as a list; ValueError unless there is one at least and none repeats."""
    names = list(names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f'{node_name}: {what} must be distinct names, got {names}')
    return names
