"""
Keyframes of an episode (RoboHorizon's Sense step) from joint positions and finger width.

A frame is a keyframe when the arm has stopped (every joint slower than
``velocity_threshold`` rad/s) while the gripper stays as it was, when the
gripper opens or closes, and at the last frame. The gripper closes when the
measured finger width falls under ``closed_fraction`` of its full opening
(holding a 4 cm cube leaves a Panda at half) and opens again above
``open_fraction`` (hysteresis: a cube held at an angle or fingers brushing a
cube do not flicker), as RLBench's binary ``gripper_open``, but read from the
fingers, not from the commands. Velocities are
finite differences of the joint positions at the control rate, so bags
without a velocity field work too. A stop lasting several frames gives one
keyframe, its first; the first frame starts the first key-horizon. The
frames between consecutive keyframes are a key-horizon: the stretch a world
model imagines ahead and over which a mask is held.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

STOP, GRIPPER, LAST = 'stop', 'gripper', 'last'


@dataclass(frozen=True)
class KeyframeSettings:
    """Thresholds of a stop and of a gripper toggle."""

    velocity_threshold: float = 0.1
    #: The fingers' full opening (m; a Panda's is 8 cm) and the part of it under which
    #: the gripper counts as closed.
    max_gripper_width: float = 0.08
    closed_fraction: float = 0.65
    #: The closed gripper opens again only above this part of the full opening (hysteresis).
    open_fraction: float = 0.8
    #: Fingers moving less than this (m per frame) count as unchanged for a stop.
    gripper_still: float = 0.001

    def __post_init__(self) -> None:
        """Refuse thresholds with which no frame, or every frame, is a keyframe."""
        if min(self.velocity_threshold, self.max_gripper_width, self.gripper_still) <= 0 or (
                not 0.0 < self.closed_fraction <= self.open_fraction < 1.0):
            raise ValueError(f'keyframe thresholds must be positive and closed_fraction in '
                             f'(0, 1), got {self}')


@dataclass(frozen=True)
class Keyframes:
    """Keyframe indices of one episode, why each is one, and the episode length."""

    indices: tuple[int, ...]
    reasons: tuple[str, ...]
    length: int

    def horizons(self) -> list[tuple[int, int]]:
        """Return the key-horizons as (first, last) frames, each ending at a keyframe."""
        starts = (0,) + tuple(i + 1 for i in self.indices[:-1])
        return [(s, e) for s, e in zip(starts, self.indices) if e >= s]

    def with_reason(self, reason: str) -> list[int]:
        """Return the keyframes found for ``reason`` (stop, gripper, last)."""
        return [i for i, r in zip(self.indices, self.reasons) if r == reason]


class KeyframeDetector:
    """Finds keyframes one frame at a time (a live stream; :func:`find_keyframes` for episodes)."""

    def __init__(self, control_hz: float, settings: KeyframeSettings = KeyframeSettings()):
        """Judge frames arriving at ``control_hz`` with ``settings``."""
        if control_hz <= 0:
            raise ValueError(f'control_hz must be positive, got {control_hz}')
        self.control_hz, self.settings = control_hz, settings
        self.reset()

    def reset(self) -> None:
        """Start a new episode: the next frame is its first."""
        self.frame = -1
        self.previous: Optional[tuple[np.ndarray, float]] = None
        self.closed = False
        self.previous_stopped = False
        self.last_keyframe = -2

    def update(self, joint_positions: np.ndarray, gripper_width: float) -> Optional[str]:
        """Return why this frame is a keyframe (stop, gripper), or None; ValueError on NaN."""
        q = np.asarray(joint_positions, dtype=np.float64).reshape(-1)
        width = float(gripper_width)
        if not np.isfinite(q).all() or not np.isfinite(width):
            raise ValueError('joint positions and gripper width must be finite')
        self.frame += 1
        closed = next_closed(self.closed, width, self.settings)
        previous, self.previous = self.previous, (q, width)
        if previous is None:
            self.closed = closed
            return None
        if previous[0].shape != q.shape:
            raise ValueError(f'joint count changed from {previous[0].size} to {q.size}')
        speed = np.abs(q - previous[0]).max(initial=0.0) * self.control_hz
        stopped = (speed < self.settings.velocity_threshold
                   and abs(width - previous[1]) < self.settings.gripper_still)
        toggled, self.closed = closed != self.closed, closed
        reason = None
        if toggled:
            reason = GRIPPER
        elif stopped and not self.previous_stopped and self.last_keyframe != self.frame - 1:
            reason = STOP
        if reason is not None:
            self.last_keyframe = self.frame
        self.previous_stopped = stopped or toggled
        return reason


def find_keyframes(joint_positions: np.ndarray, gripper_width: np.ndarray, control_hz: float,
                   settings: KeyframeSettings = KeyframeSettings()) -> Keyframes:
    """Return the keyframes of an episode with ``T x J`` joint positions and ``T`` widths."""
    q = np.asarray(joint_positions, dtype=np.float64)
    width = np.asarray(gripper_width, dtype=np.float64).reshape(-1)
    if q.ndim != 2 or len(q) != len(width) or len(q) == 0:
        raise ValueError(f'need T x J joint positions and T gripper widths, got {q.shape} and '
                         f'{width.shape}')
    detector = KeyframeDetector(control_hz, settings)
    indices, reasons = [], []
    for t in range(len(q)):
        reason = detector.update(q[t], width[t])
        if reason is not None:
            indices.append(t)
            reasons.append(reason)
    if not indices or indices[-1] != len(q) - 1:
        indices.append(len(q) - 1)
        reasons.append(LAST)
    return Keyframes(tuple(indices), tuple(reasons), len(q))


def next_closed(closed: bool, width: float, settings: KeyframeSettings) -> bool:
    """Return whether the gripper is closed after a frame of ``width``, given it was ``closed``."""
    fraction = width / settings.max_gripper_width
    return fraction < settings.open_fraction if closed else fraction < settings.closed_fraction


def gripper_events(commanded_fraction: np.ndarray, threshold: float = 0.5) -> list[int]:
    """Return the frames at which a commanded gripper opening crosses ``threshold``."""
    closed = np.asarray(commanded_fraction, dtype=np.float64).reshape(-1) < threshold
    return [int(t) for t in np.flatnonzero(closed[1:] != closed[:-1]) + 1]


def match_events(found: list[int], events: list[int], window: int) -> tuple[int, int]:
    """Return (found frames near an event, events near a found frame), within ``window`` frames."""
    def near(t: int, others: list[int]) -> bool:
        return any(abs(t - o) <= window for o in others)
    return sum(near(f, events) for f in found), sum(near(e, found) for e in events)
