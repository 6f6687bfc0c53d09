"""
Configuration dataclasses for the tabletop simulator.

Everything that changes what the simulator builds or how it steps lives here so
that one YAML mapping (``SimConfig.from_dict``) reproduces an experiment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
import math
from typing import Any, Optional

Vec3 = tuple[float, float, float]

TASK_NAMES = ('reach', 'lift', 'push', 'pick_place', 'stack', 'stack3', 'peg_insert')
CAMERA_MOUNTS = ('world', 'wrist')
ACTION_MODES = ('delta', 'absolute')
BACKGROUNDS = ('plain', 'textured', 'distractors')


@dataclass(frozen=True)
class CameraSpec:
    """
    One pinhole camera view.

    For ``mount='world'`` ``eye`` and ``target`` are world coordinates; for
    ``mount='wrist'`` they are expressed in the tool-centre-point frame and the
    camera moves with the hand. ``fov_deg`` is the vertical field of view.
    ``rate_hz=None`` renders the view at every control step.
    """

    name: str
    width: int = 128
    height: int = 128
    fov_deg: float = 60.0
    near: float = 0.01
    far: float = 3.0
    eye: Optional[Vec3] = None
    target: Optional[Vec3] = None
    up: Vec3 = (0.0, 0.0, 1.0)
    mount: str = 'world'
    rate_hz: Optional[float] = None

    def __post_init__(self) -> None:
        """Reject specs that cannot be rendered."""
        if not self.name:
            raise ValueError('CameraSpec.name must be a non-empty string')
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'camera {self.name!r}: width and height must be positive')
        if not 0.0 < self.fov_deg < 180.0:
            raise ValueError(f'camera {self.name!r}: fov_deg must be in (0, 180)')
        if not 0.0 < self.near < self.far:
            raise ValueError(f'camera {self.name!r}: need 0 < near < far')
        if self.mount not in CAMERA_MOUNTS:
            raise ValueError(f'camera {self.name!r}: mount must be one of {CAMERA_MOUNTS}')
        if self.eye is None or self.target is None:
            raise ValueError(f'camera {self.name!r}: eye and target are required')
        if self.rate_hz is not None and self.rate_hz <= 0:
            raise ValueError(f'camera {self.name!r}: rate_hz must be positive or None')

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraSpec:
        """Build a spec from a YAML mapping (lists become tuples)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f'unknown camera keys {sorted(unknown)}; known: {sorted(known)}')
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**values)


def default_cameras() -> tuple[CameraSpec, ...]:
    """Return the default front, side and wrist views of the workspace."""
    return (
        CameraSpec('front', eye=(1.0, 0.0, 0.45), target=(0.5, 0.0, 0.05)),
        CameraSpec('side', eye=(0.55, 0.6, 0.4), target=(0.55, 0.0, 0.05)),
        CameraSpec('wrist', mount='wrist', fov_deg=75.0, near=0.02,
                   eye=(0.06, 0.0, -0.09), target=(0.0, 0.0, 0.12), up=(-1.0, 0.0, 0.0)),
    )


@dataclass(frozen=True)
class RandomizationConfig:
    """Per-episode visual randomisation, drawn from the episode seed."""

    object_colors: bool = False
    lighting: bool = False
    camera_jitter: bool = False
    background: str = 'plain'

    def __post_init__(self) -> None:
        """Reject unknown backgrounds."""
        if self.background not in BACKGROUNDS:
            raise ValueError(f'background must be one of {BACKGROUNDS}, got {self.background!r}')


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings: task, timing, action layout, cameras, randomisation."""

    task: str = 'lift'
    control_hz: float = 10.0
    physics_hz: float = 240.0
    action_mode: str = 'delta'
    cameras: tuple[CameraSpec, ...] = field(default_factory=default_cameras)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    max_episode_steps: Optional[int] = None
    gui: bool = False

    def __post_init__(self) -> None:
        """Validate names and rates so mistakes fail at load time, not mid-run."""
        check_task_name(self.task)
        if self.control_hz <= 0 or self.physics_hz <= 0:
            raise ValueError('control_hz and physics_hz must be positive, got '
                             f'{self.control_hz} and {self.physics_hz}')
        ratio = self.physics_hz / self.control_hz
        if ratio < 1 or not math.isclose(ratio, round(ratio), abs_tol=1e-9):
            raise ValueError(f'physics_hz ({self.physics_hz}) must be an integer multiple of '
                             f'control_hz ({self.control_hz})')
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f'action_mode must be one of {ACTION_MODES}, '
                             f'got {self.action_mode!r}')
        if self.max_episode_steps is not None and self.max_episode_steps <= 0:
            raise ValueError('max_episode_steps must be positive or None')
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f'camera names must be unique, got {names}')

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return int(round(self.physics_hz / self.control_hz))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimConfig:
        """Build a config from a YAML mapping; missing keys keep their defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f'unknown sim config keys {sorted(unknown)}; known: {sorted(known)}')
        values = dict(d)
        if 'cameras' in values:
            values['cameras'] = tuple(CameraSpec.from_dict(c) for c in values['cameras'])
        if 'randomization' in values:
            values['randomization'] = RandomizationConfig(**values['randomization'])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain mapping (lists, not tuples) suitable for YAML."""
        return _listify(asdict(self))


def check_task_name(name: str) -> None:
    """Raise ValueError naming the known tasks if ``name`` is not one of them."""
    if name not in TASK_NAMES:
        raise ValueError(f'unknown task {name!r}; known tasks: {", ".join(TASK_NAMES)}')


def _listify(value: Any) -> Any:
    """Turn tuples into lists recursively so YAML dumps stay plain."""
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    return value
