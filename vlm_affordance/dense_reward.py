"""
The KAGI dense reward: progress along world waypoints, below the sparse success reward.

With waypoints ``w_0 .. w_{K-1}`` a progress index ``k`` (how many were reached)
advances, and never goes back, when the point tracked for ``w_k`` comes within
``epsilon`` of it. The dense reward is::

    r = alpha * (k + 1 - min(d / d_max, 1)) / (K + 1)

with ``d`` the tracked point's distance to ``w_k`` (0 once all are reached) and
``d_max`` the length of the segment leading to ``w_k`` (from the episode's first
position for ``w_0``), so ``r`` is continuous when a waypoint is reached and
stays in ``[0, alpha]``; ``alpha < 1`` keeps success (1) on top. The reward an
agent sees is the sparse one whenever it is non-zero, else the dense one. The
potential-based variant pays ``gamma * phi(s') - phi(s)`` with ``phi`` the
progress above, which leaves optimal policies unchanged.

Without valid waypoints the reward is the sparse one and ``diagnostic`` says
why: a wrong dense reward is worse than none. Offline relabelling of a recorded
episode (:func:`relabel`) steps the same tracker.
"""

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from visual_rl_stack.core.rewards import combine

#: What a waypoint can be reached with: the gripper's TCP or the manipulated object.
TRACKED = ('gripper', 'object')


@dataclass(frozen=True)
class RewardSettings:
    """
    Dense reward parameters.

    ``track`` names, per waypoint, the point that must reach it (None: the
    gripper for all); ``potential`` switches to potential-based shaping.
    """

    epsilon: float = 0.03
    alpha: float = 0.5
    track: Optional[tuple[str, ...]] = None
    potential: bool = False
    gamma: float = 0.99

    def __post_init__(self) -> None:
        """Reject parameters that would let the dense reward rival success or never advance."""
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f'alpha must be in (0, 1) so that success dominates, '
                             f'got {self.alpha}')
        if self.epsilon <= 0:
            raise ValueError(f'epsilon must be positive, got {self.epsilon}')
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f'gamma must be in (0, 1], got {self.gamma}')
        unknown = set(self.track or ()) - set(TRACKED)
        if unknown:
            raise ValueError(f'unknown tracked points {sorted(unknown)}; known: {TRACKED}')


def check_waypoints(waypoints: Optional[Sequence[Sequence[float]]],
                    missing: str = 'no waypoints given') -> tuple[Optional[np.ndarray], str]:
    """Return waypoints as a ``Kx3`` float array and 'ok', or None and why they are unusable."""
    if waypoints is None:
        return None, missing
    try:
        array = np.asarray(waypoints, dtype=np.float64)
    except (TypeError, ValueError) as error:
        return None, f'waypoints are not numbers: {error}'
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] != 3:
        return None, f'waypoints must be K x 3 with K >= 1, got shape {array.shape}'
    if not np.isfinite(array).all():
        return None, 'waypoints contain NaN or inf'
    return array, 'ok'


class WaypointProgress:
    """Per-episode tracker of waypoint progress that turns each step into a reward."""

    def __init__(self, waypoints: Optional[Sequence[Sequence[float]]],
                 settings: RewardSettings = RewardSettings(),
                 missing: str = 'no waypoints given'):
        """Check the waypoints; unusable ones make the reward sparse-only (see ``diagnostic``)."""
        self.settings = settings
        self.waypoints, why = check_waypoints(waypoints, missing)
        count = 0 if self.waypoints is None else len(self.waypoints)
        self.track = settings.track or ('gripper',) * count
        if self.waypoints is not None and len(self.track) != count:
            raise ValueError(f'track names {len(self.track)} points for {count} waypoints')
        self.diagnostic = (f'dense: {count} waypoints' if self.waypoints is not None
                           else f'sparse only: {why}')
        self.progress = 0
        self.dense = 0.0
        self._scale = np.zeros(count)
        self._phi: Optional[float] = None

    @property
    def phi(self) -> float:
        """Return the progress value of the latest state (0 before the first reset)."""
        return self._phi or 0.0

    @property
    def active(self) -> bool:
        """Return whether a dense reward is computed (else the reward is sparse-only)."""
        return self.waypoints is not None

    def reset(self, ee_pos: Sequence[float], object_pos: Optional[Sequence[float]] = None) -> None:
        """Start an episode from its first state (the first segment starts here)."""
        self.progress = 0
        self.dense = 0.0
        if not self.active:
            self._phi = 0.0
            return
        start = self._tracked(0, ee_pos, object_pos)
        segments = np.diff(np.vstack([start, self.waypoints]), axis=0)
        self._scale = np.maximum(np.linalg.norm(segments, axis=1), self.settings.epsilon)
        self._phi = self._advance(ee_pos, object_pos)

    def step(self, ee_pos: Sequence[float], object_pos: Optional[Sequence[float]] = None,
             sparse: float = 0.0) -> float:
        """Return the reward of the transition into the state with these positions."""
        if self._phi is None:
            raise RuntimeError('call reset() with the first state before step()')
        if not self.active:
            return float(sparse)
        phi = self._advance(ee_pos, object_pos)
        s = self.settings
        self.dense = s.gamma * phi - self._phi if s.potential else phi
        self._phi = phi
        return combine(sparse, self.dense)

    def _advance(self, ee_pos: Sequence[float], object_pos: Optional[Sequence[float]]) -> float:
        """Advance the progress index past every reached waypoint; return the progress value."""
        count, eps = len(self.waypoints), self.settings.epsilon
        while self.progress < count:
            k = self.progress
            d = float(np.linalg.norm(self._tracked(k, ee_pos, object_pos) - self.waypoints[k]))
            if d >= eps:
                fraction = min(d / self._scale[k], 1.0)
                return self.settings.alpha * (k + 1 - fraction) / (count + 1)
            self.progress += 1
        return self.settings.alpha

    def _tracked(self, k: int, ee_pos: Sequence[float],
                 object_pos: Optional[Sequence[float]]) -> np.ndarray:
        """Return the point that must reach waypoint ``k``."""
        if self.track[k] == 'gripper':
            return np.asarray(ee_pos, dtype=np.float64)
        if object_pos is None:
            raise ValueError(f'waypoint {k} tracks the object but no object position was given')
        return np.asarray(object_pos, dtype=np.float64)


@dataclass(frozen=True)
class Relabelled:
    """Per-step rewards of a recorded episode, the dense terms and progress behind them."""

    rewards: np.ndarray
    dense: np.ndarray
    progress: np.ndarray
    diagnostic: str


def relabel(waypoints: Optional[Sequence[Sequence[float]]], ee_positions: np.ndarray,
            sparse: np.ndarray, object_positions: Optional[np.ndarray] = None,
            settings: RewardSettings = RewardSettings(),
            missing: str = 'no waypoints given') -> Relabelled:
    """
    Return the rewards of an episode of ``N`` steps recorded as ``N + 1`` states.

    ``ee_positions`` (and ``object_positions``) are ``(N + 1) x 3``: the state
    after reset, then after every step; ``sparse`` holds the ``N`` recorded rewards.
    """
    ee = np.asarray(ee_positions, dtype=np.float64)
    sparse = np.asarray(sparse, dtype=np.float64)
    steps = len(sparse)
    if sparse.ndim != 1 or not np.isfinite(sparse).all():
        raise ValueError(f'sparse rewards must be a finite 1-D array, got shape {sparse.shape}')
    for name, array in (('ee_positions', ee), ('object_positions', object_positions)):
        if array is not None and np.shape(array) != (steps + 1, 3):
            raise ValueError(f'{name} must be {(steps + 1, 3)} for {steps} rewards, '
                             f'got {np.shape(array)}')
    objects = [None] * (steps + 1) if object_positions is None else np.asarray(object_positions)
    tracker = WaypointProgress(waypoints, settings, missing)
    tracker.reset(ee[0], objects[0])
    rewards, dense, progress = np.zeros(steps), np.zeros(steps), np.zeros(steps, dtype=int)
    for t in range(steps):
        rewards[t] = tracker.step(ee[t + 1], objects[t + 1], sparse[t])
        dense[t], progress[t] = tracker.dense, tracker.progress
    return Relabelled(rewards, dense, progress, tracker.diagnostic)
