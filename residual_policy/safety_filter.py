"""
Policy-side safety filter: what the policy proposes, made safe before it is published.

ROS-free; the policy node puts one :class:`SafetyFilter` between the policy and
the arm command topics and reports every :class:`SafetyIssue` on /diagnostics.
It works on actions in the simulator's layouts (see ``sim/scene.py``):

* ``'delta'``: ``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` (m and rad per
  control step, gripper opening fraction in [0, 1]);
* ``'absolute'``: ``[x, y, z, qx, qy, qz, qw, gripper]`` (world-frame TCP pose).

Rules, in order:

1. Refusals (level ``'error'``; the arm holds still, see :func:`hold_action`):
   an observation older than ``observation_timeout`` or none at all
   (``stale_observation``), a missing or non-finite measured TCP pose
   (``bad_ee_pose``), an action of the wrong shape or type (``bad_shape``), a
   NaN or inf anywhere in the action, gripper included (``non_finite``), a zero
   quaternion (``bad_quaternion``).
2. Corrections (level ``'warn'``; the corrected action is published): a step
   above the speed limit times the control period is shortened along its own
   direction (``linear_speed``, ``angular_speed``; absolute targets move toward
   the proposal from the measured TCP pose), a TCP target outside the workspace
   is clamped into it (``workspace``), a gripper command outside [0, 1] is
   clipped (``gripper_range``).

The linear step limit wins over the workspace: a TCP measured outside the box
is brought back at most ``max_step`` per step. Otherwise the target is always
inside the box (the segment from a TCP inside the box to a point in it stays in it).
Delta targets are predicted from the measured TCP; the simulator adds deltas to
its commanded target, which leads the TCP by at most a few centimetres, and
clamps again on its own side (``sim_node.CommandBuffer``).

The filter never raises on bad input and always returns a finite action of the
right length.
"""

from dataclasses import dataclass, field
import math
from typing import Any, Optional

import numpy as np
from visual_rl_stack.sim.robot import (DOWN, quat_conjugate, quat_from_rotvec, quat_multiply,
                                       quat_to_rotvec, Workspace)

WARN = 'warn'
ERROR = 'error'
ACTION_SIZES = {'delta': 7, 'absolute': 8}
#: Gripper command held before any action was accepted (matches the sim: open).
INITIAL_GRIPPER = 1.0


@dataclass(frozen=True)
class SafetyLimits:
    """
    Limits the filter enforces, normally read from node parameters.

    ``max_linear_speed`` (m/s) and ``max_angular_speed`` (rad/s) become per-step
    limits through ``control_hz``; ``observation_timeout`` (s) is the oldest
    observation the policy may act on.
    """

    workspace: Workspace = Workspace()
    max_linear_speed: float = 0.25
    max_angular_speed: float = 1.0
    control_hz: float = 10.0
    observation_timeout: float = 0.5

    def __post_init__(self) -> None:
        """Reject limits that would make the filter meaningless, with a clear message."""
        if not isinstance(self.workspace, Workspace):
            raise ValueError(f'workspace must be a Workspace, got {self.workspace!r}')
        lo = np.asarray(self.workspace.lo, dtype=np.float64)
        hi = np.asarray(self.workspace.hi, dtype=np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or not (np.isfinite(lo).all()
                                                        and np.isfinite(hi).all()):
            raise ValueError(
                f'workspace bounds must be 3 finite values each, got {self.workspace}')
        if not (lo <= hi).all():
            raise ValueError(f'workspace lo must not exceed hi, got {self.workspace}')
        for name in ('max_linear_speed', 'max_angular_speed', 'control_hz',
                     'observation_timeout'):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):
                raise ValueError(f'{name} must be a positive finite number, got {value!r}')

    @property
    def max_step(self) -> float:
        """Return the largest TCP translation per control step (m)."""
        return self.max_linear_speed / self.control_hz

    @property
    def max_turn(self) -> float:
        """Return the largest TCP rotation per control step (rad)."""
        return self.max_angular_speed / self.control_hz


@dataclass(frozen=True)
class SafetyIssue:
    """One refusal (``'error'``) or correction (``'warn'``) for /diagnostics."""

    level: str
    code: str
    message: str


@dataclass
class FilterResult:
    """The action to publish, whether it is the hold-still action, and why."""

    action: np.ndarray
    held: bool
    issues: list[SafetyIssue] = field(default_factory=list)


def hold_action(action_mode: str, gripper: float, position: Optional[np.ndarray] = None,
                orientation: Optional[np.ndarray] = None) -> np.ndarray:
    """
    Return the action that keeps the arm where it is.

    ``'delta'``: zero motion with the given gripper command. ``'absolute'``: the
    given TCP ``position`` and xyzw ``orientation`` (normalised) with the gripper
    command; both are required and must be finite. Raises ``ValueError`` on an
    unknown mode or missing pose (programming errors, not bad data).
    """
    if action_mode not in ACTION_SIZES:
        raise ValueError(f'action_mode must be one of {sorted(ACTION_SIZES)}, got {action_mode!r}')
    if action_mode == 'delta':
        return np.array([0.0] * 6 + [float(gripper)])
    pos = _finite_vector(position, 3)
    orn = _unit_quaternion(orientation)
    if pos is None or orn is None:
        raise ValueError('an absolute hold action needs a finite position and a non-zero '
                         f'quaternion, got {position!r}, {orientation!r}')
    return np.concatenate([pos, orn, [float(gripper)]])


def _finite_vector(value: Any, size: int) -> Optional[np.ndarray]:
    """Return ``value`` as a float64 vector of ``size`` finite values, or None."""
    try:
        vec = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if vec.shape != (size,) or not np.isfinite(vec).all():
        return None
    return vec


def _unit_quaternion(value: Any) -> Optional[np.ndarray]:
    """Return ``value`` as a normalised xyzw quaternion, or None if it is not one."""
    quat = _finite_vector(value, 4)
    if quat is None:
        return None
    scale = float(np.max(np.abs(quat)))
    if scale < 1e-6:  # also rules out tiny quaternions whose direction is noise
        return None
    quat = quat / scale  # no overflow for huge quaternions
    return quat / np.linalg.norm(quat)


def _shorten(vector: np.ndarray, limit: float) -> tuple[np.ndarray, float]:
    """Return ``vector`` scaled to norm at most ``limit`` (same direction) and its norm."""
    scale = float(np.max(np.abs(vector)))
    if scale == 0.0:
        return vector, 0.0
    unit_norm = float(np.linalg.norm(vector / scale))  # no overflow for huge vectors
    norm = scale * unit_norm
    if norm > limit:
        return vector / scale * (limit / unit_norm), norm
    return vector, norm


def _round(vector: np.ndarray) -> list[float]:
    """Return a short list form of a vector for messages."""
    return [float(f'{value:.4g}') for value in vector]


class SafetyFilter:
    """
    Make policy actions safe to publish (see the module docstring for the rules).

    Remembers the last gripper command it let through (held actions keep it, so
    a stale observation does not drop a grasped object) and, in absolute mode,
    the last pose it let through (the fallback hold pose when the measured TCP
    pose is unusable). Call :meth:`reset` at every episode start.
    """

    def __init__(self, limits: SafetyLimits, action_mode: str = 'delta'):
        """Check the action mode and start with an open gripper and no pose."""
        if not isinstance(limits, SafetyLimits):
            raise ValueError(f'limits must be SafetyLimits, got {limits!r}')
        if action_mode not in ACTION_SIZES:
            raise ValueError(
                f'action_mode must be one of {sorted(ACTION_SIZES)}, got {action_mode!r}')
        self.limits = limits
        self.action_mode = action_mode
        self.action_size = ACTION_SIZES[action_mode]
        self.reset()

    def reset(self, gripper: float = INITIAL_GRIPPER) -> None:
        """Forget the last accepted command (new episode); holds keep ``gripper``."""
        self.last_gripper = float(np.clip(gripper, 0.0, 1.0)) if math.isfinite(gripper) else 1.0
        self.last_position: Optional[np.ndarray] = None
        self.last_orientation: Optional[np.ndarray] = None

    def hold_action(self, ee_position: Any = None, ee_orientation: Any = None) -> np.ndarray:
        """
        Return the hold-still action for the current state; never raises.

        Absolute mode holds the measured TCP pose (clamped into the workspace),
        falling back to the last accepted pose, then to the workspace centre
        pointing down (only when nothing better was ever known).
        """
        if self.action_mode == 'delta':
            return hold_action('delta', self.last_gripper)
        workspace = self.limits.workspace
        pos = _finite_vector(ee_position, 3)
        if pos is None:
            pos = self.last_position
        if pos is None:
            pos = (np.asarray(workspace.lo, dtype=np.float64)
                   + np.asarray(workspace.hi, dtype=np.float64)) / 2
        orn = _unit_quaternion(ee_orientation)
        if orn is None:
            orn = self.last_orientation
        if orn is None:
            orn = np.array(DOWN, dtype=np.float64)
        return hold_action('absolute', self.last_gripper, workspace.clamp(pos)[0], orn)

    def apply(
            self, action: Any, ee_position: Any, observation_age_s: Optional[float],
            ee_orientation: Any = None) -> FilterResult:
        """
        Return the safe version of ``action``; never raises.

        ``ee_position`` is the measured TCP position and ``observation_age_s`` the
        age (s) of the observation the action was computed from (None: nothing
        observed yet). Absolute mode also needs the measured ``ee_orientation``
        (xyzw) to limit the rotation speed and to hold still.
        """
        issues: list[SafetyIssue] = []
        try:
            age = float(observation_age_s)
        except (TypeError, ValueError, OverflowError):
            age = math.nan
        timeout = self.limits.observation_timeout
        if not age <= timeout:  # also None / NaN
            what = 'no observation yet' if observation_age_s is None else (
                f'observation age {observation_age_s!r} s exceeds the {timeout} s timeout')
            issues.append(SafetyIssue(ERROR, 'stale_observation', f'{what}; holding still'))
        ee_pos = _finite_vector(ee_position, 3)
        ee_orn = _unit_quaternion(ee_orientation)
        if ee_pos is None or (self.action_mode == 'absolute' and ee_orn is None):
            issues.append(SafetyIssue(
                ERROR, 'bad_ee_pose', f'measured TCP pose unusable (position {ee_position!r}, '
                f'orientation {ee_orientation!r}); holding still'))
        proposed = self._parse_action(action, issues)
        if issues:
            return FilterResult(self.hold_action(ee_position, ee_orientation), True, issues)
        if self.action_mode == 'delta':
            safe = self._filter_delta(proposed, ee_pos, issues)
        else:
            safe = self._filter_absolute(proposed, ee_pos, ee_orn, issues)
        if safe is None:
            return FilterResult(self.hold_action(ee_position, ee_orientation), True, issues)
        gripper = float(proposed[-1])
        if not 0.0 <= gripper <= 1.0:
            issues.append(SafetyIssue(
                WARN, 'gripper_range', f'gripper command {gripper:.4g} outside [0, 1]; clipped'))
            gripper = min(max(gripper, 0.0), 1.0)
        safe[-1] = gripper
        self.last_gripper = gripper
        return FilterResult(safe, False, issues)

    def _parse_action(self, action: Any, issues: list[SafetyIssue]) -> Optional[np.ndarray]:
        """Return the action as a finite float64 vector, or record why it is refused."""
        try:
            vec = np.array(action, dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as error:
            issues.append(SafetyIssue(ERROR, 'bad_shape', f'action is not numeric ({error}); '
                                                          'holding still'))
            return None
        if vec.shape != (self.action_size,):
            issues.append(SafetyIssue(
                ERROR, 'bad_shape', f'action shape {vec.shape} is not ({self.action_size},) for '
                f'{self.action_mode!r} actions; holding still'))
            return None
        if not np.isfinite(vec).all():
            issues.append(SafetyIssue(ERROR, 'non_finite',
                                      f'action {vec.tolist()} contains NaN or inf; holding still'))
            return None
        return vec

    def _limit_translation(self, ee_pos: np.ndarray, step: np.ndarray,
                           issues: list[SafetyIssue]) -> np.ndarray:
        """Return the TCP target ``ee_pos + step`` under the speed limit and in the box."""
        max_step = self.limits.max_step
        step, norm = _shorten(step, max_step)
        if norm > max_step:
            issues.append(SafetyIssue(
                WARN, 'linear_speed', f'TCP step {norm:.4g} m exceeds {max_step:.4g} m per step '
                f'({self.limits.max_linear_speed} m/s); shortened'))
        target, clamped = self.limits.workspace.clamp(ee_pos + step)
        if clamped:
            issues.append(SafetyIssue(
                WARN, 'workspace', f'TCP target {_round(ee_pos + step)} outside the workspace '
                f'{self.limits.workspace}; clamped to {_round(target)}'))
            # Only a TCP measured outside the box can need this second shortening.
            target = ee_pos + _shorten(target - ee_pos, max_step)[0]
        return target

    def _filter_delta(self, proposed: np.ndarray, ee_pos: np.ndarray,
                      issues: list[SafetyIssue]) -> Optional[np.ndarray]:
        """Apply the speed and workspace limits to a delta action."""
        target = self._limit_translation(ee_pos, proposed[:3], issues)
        max_turn = self.limits.max_turn
        turn, norm = _shorten(proposed[3:6], max_turn)
        if norm > max_turn:
            issues.append(SafetyIssue(
                WARN, 'angular_speed', f'TCP rotation {norm:.4g} rad exceeds {max_turn:.4g} rad '
                f'per step ({self.limits.max_angular_speed} rad/s); shortened'))
        return np.concatenate([target - ee_pos, turn, proposed[6:]])

    def _filter_absolute(self, proposed: np.ndarray, ee_pos: np.ndarray, ee_orn: np.ndarray,
                         issues: list[SafetyIssue]) -> Optional[np.ndarray]:
        """Apply the speed and workspace limits to an absolute pose action."""
        orn = _unit_quaternion(proposed[3:7])
        if orn is None:
            issues.append(SafetyIssue(ERROR, 'bad_quaternion', f'target quaternion '
                                      f'{proposed[3:7].tolist()} is zero; holding still'))
            return None
        target = self._limit_translation(ee_pos, proposed[:3] - ee_pos, issues)
        rotvec = quat_to_rotvec(quat_multiply(orn, quat_conjugate(ee_orn)))
        max_turn = self.limits.max_turn
        rotvec, norm = _shorten(rotvec, max_turn)
        if norm > max_turn:
            issues.append(SafetyIssue(
                WARN, 'angular_speed', f'TCP rotation {norm:.4g} rad exceeds {max_turn:.4g} rad '
                f'per step ({self.limits.max_angular_speed} rad/s); turned part of the way'))
            orn = quat_multiply(quat_from_rotvec(rotvec), ee_orn)
            orn = orn / np.linalg.norm(orn)
        self.last_position, self.last_orientation = target, orn
        return np.concatenate([target, orn, proposed[7:]])
