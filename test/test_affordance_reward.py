"""Tests of the KAGI waypoint-progress reward, its potential-based variant and relabelling."""

import numpy as np
import pytest
from visual_rl_stack.vlm_affordance.dense_reward import (
    combine, relabel, RewardSettings, WaypointProgress)

WAYPOINTS = np.array([[0.5, 0.0, 0.15], [0.5, 0.0, 0.03], [0.6, -0.1, 0.15], [0.6, -0.1, 0.03]])
START = np.array([0.45, 0.1, 0.35])


def straight_path(points: np.ndarray, step: float = 0.005) -> np.ndarray:
    """Return positions every ``step`` metres along the polyline through ``points``."""
    path = [points[0]]
    for a, b in zip(points, points[1:]):
        n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
        path.extend(a + (b - a) * (i / n) for i in range(1, n + 1))
    return np.array(path)


def wander(steps: int = 60, seed: int = 0) -> np.ndarray:
    """Return a random walk of the gripper from the start (not through the waypoints)."""
    rng = np.random.default_rng(seed)
    return START + np.cumsum(rng.normal(0.0, 0.02, (steps + 1, 3)), axis=0) * [1, 1, 0.5]


def test_progress_is_monotone_along_the_waypoints_and_ends_at_alpha():
    path = straight_path(np.vstack([START, WAYPOINTS]))
    result = relabel(WAYPOINTS, path, np.zeros(len(path) - 1))
    assert result.diagnostic == 'dense: 4 waypoints'
    assert np.all(np.diff(result.progress) >= 0) and result.progress[-1] == 4
    # The reward rises everywhere except while the path finishes the last few
    # centimetres into a waypoint already reached (it then leaves the next one behind).
    inside = [k > 0 and np.linalg.norm(p - WAYPOINTS[k - 1]) < 0.03
              for k, p in zip(result.progress[1:], path[2:])]
    falls = np.diff(result.rewards) < -1e-12
    assert not (falls & ~np.array(inside)).any()
    assert result.rewards.min() >= 0 and result.rewards.max() <= 0.5 + 1e-12
    assert result.rewards[-1] == pytest.approx(0.5)
    reached = [int(np.argmax(result.progress >= k)) for k in range(1, 5)]
    assert reached == sorted(reached) and len(set(reached)) == 4


def test_reward_never_exceeds_alpha_and_progress_never_goes_back():
    path = np.vstack([straight_path(np.vstack([START, WAYPOINTS[:2]])), wander(40)])
    tracker = WaypointProgress(WAYPOINTS, RewardSettings(alpha=0.3))
    tracker.reset(path[0])
    progress, rewards = [], []
    for p in path[1:]:
        rewards.append(tracker.step(p))
        progress.append(tracker.progress)
    assert max(rewards) <= 0.3 and min(rewards) >= 0.0
    assert np.all(np.diff(progress) >= 0) and progress[-1] >= 2
    assert rewards[-1] < max(rewards)


def test_sparse_success_replaces_the_dense_reward():
    assert combine(1.0, 0.4) == 1.0 and combine(0.0, 0.4) == 0.4 and combine(-1.0, 0.4) == -1.0
    path = straight_path(np.vstack([START, WAYPOINTS[:2]]))
    sparse = np.zeros(len(path) - 1)
    sparse[-1] = 1.0
    result = relabel(WAYPOINTS, path, sparse)
    assert result.rewards[-1] == 1.0 and 0 < result.dense[-1] < 0.5
    assert np.array_equal(result.rewards[:-1], result.dense[:-1])


@pytest.mark.parametrize('seed', [0, 1])
def test_potential_shaping_telescopes_with_gamma_one(seed):
    path = np.vstack([straight_path(np.vstack([START, WAYPOINTS[:2]])), wander(30, seed)])
    sparse = np.zeros(len(path) - 1)
    progress = relabel(WAYPOINTS, path, sparse)
    shaped = relabel(WAYPOINTS, path, sparse, settings=RewardSettings(potential=True, gamma=1.0))
    # The first segment is measured from the start, so phi(start) = 0.
    assert shaped.rewards.sum() == pytest.approx(progress.rewards[-1] - 0.0, abs=1e-12)
    assert shaped.rewards.min() < 0 < shaped.rewards.max()
    discounted = relabel(WAYPOINTS, path, sparse, settings=RewardSettings(potential=True))
    np.testing.assert_allclose(discounted.rewards,
                               0.99 * progress.rewards - np.r_[0.0, progress.rewards[:-1]])


def test_relabel_equals_stepping_the_tracker_with_object_tracking():
    rng = np.random.default_rng(3)
    ee = straight_path(np.vstack([START, WAYPOINTS]), step=0.01)
    ee += rng.normal(0, 0.003, ee.shape)
    objects = np.where(np.arange(len(ee))[:, None] < len(ee) // 2, WAYPOINTS[1], ee - (0, 0, 0.01))
    sparse = (np.arange(len(ee) - 1) == len(ee) - 2).astype(float)
    settings = RewardSettings(track=('gripper', 'gripper', 'object', 'object'), epsilon=0.02)
    result = relabel(WAYPOINTS, ee, sparse, objects, settings)
    tracker = WaypointProgress(WAYPOINTS, settings)
    tracker.reset(ee[0], objects[0])
    stepped = [tracker.step(e, o, s) for e, o, s in zip(ee[1:], objects[1:], sparse)]
    np.testing.assert_array_equal(result.rewards, stepped)
    assert result.progress[-1] == tracker.progress == 4
    with pytest.raises(ValueError, match='tracks the object'):
        relabel(WAYPOINTS, ee, sparse, settings=settings)


@pytest.mark.parametrize('waypoints, why', [
    (None, 'sparse only: no waypoints: target rejected'),
    (np.full((4, 3), np.nan), 'sparse only: waypoints contain NaN or inf'),
    (np.zeros((4, 2)), 'sparse only: waypoints must be K x 3'),
    ([], 'sparse only: waypoints must be K x 3'),
])
def test_missing_or_invalid_waypoints_give_the_sparse_reward(waypoints, why):
    path = wander(20)
    sparse = np.zeros(20)
    sparse[-1] = 1.0
    result = relabel(waypoints, path, sparse, missing='no waypoints: target rejected')
    assert result.diagnostic.startswith(why)
    assert np.array_equal(result.rewards, sparse) and not result.dense.any()
    tracker = WaypointProgress(waypoints, missing='no waypoints: target rejected')
    tracker.reset(path[0])
    assert not tracker.active and tracker.step(path[1], sparse=0.0) == 0.0


def test_bad_settings_and_calls_are_refused():
    with pytest.raises(ValueError, match='alpha'):
        RewardSettings(alpha=1.0)
    with pytest.raises(ValueError, match='unknown tracked'):
        RewardSettings(track=('hand',))
    with pytest.raises(ValueError, match='track names 1 points for 4'):
        WaypointProgress(WAYPOINTS, RewardSettings(track=('gripper',)))
    with pytest.raises(RuntimeError, match='reset'):
        WaypointProgress(WAYPOINTS).step(START)
    with pytest.raises(ValueError, match='ee_positions'):
        relabel(WAYPOINTS, np.zeros((5, 3)), np.zeros(5))
