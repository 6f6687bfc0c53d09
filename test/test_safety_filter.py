"""The safety filter refuses bad actions, limits speed, workspace and gripper, never raises."""

import math

import numpy as np
import pytest
from visual_rl_stack.residual_policy.safety_filter import (FilterResult, hold_action, SafetyFilter,
                                                           SafetyLimits)
from visual_rl_stack.sim.robot import DOWN, quat_from_rotvec, quat_multiply, Workspace

LIMITS = SafetyLimits(workspace=Workspace(lo=(0.2, -0.4, 0.0), hi=(0.8, 0.4, 0.5)),
                      max_linear_speed=0.5, max_angular_speed=2.0, control_hz=10.0,
                      observation_timeout=0.2)
STEP, TURN = 0.05, 0.2  # the per-step limits of LIMITS
EE = np.array([0.5, 0.0, 0.25])
ORN = np.array(DOWN, dtype=np.float64)


def _codes(result: FilterResult) -> list[str]:
    return [issue.code for issue in result.issues]


def _levels(result: FilterResult) -> set[str]:
    return {issue.level for issue in result.issues}


def _absolute(position, orientation=ORN, gripper=0.5) -> np.ndarray:
    return np.concatenate([position, orientation, [gripper]])


@pytest.mark.parametrize('changes', [
    {'max_linear_speed': 0.0}, {'max_angular_speed': -1.0}, {'control_hz': math.nan},
    {'observation_timeout': math.inf}, {'control_hz': '10'}, {'workspace': (0, 1)},
    {'workspace': Workspace(lo=(1.0, 0.0, 0.0), hi=(0.5, 1.0, 1.0))},
])
def test_limits_are_validated(changes):
    fields = {'workspace': Workspace(), 'max_linear_speed': 0.5, 'max_angular_speed': 1.0,
              'control_hz': 10.0, 'observation_timeout': 0.2}
    fields.update(changes)
    with pytest.raises(ValueError, match=next(iter(changes))):
        SafetyLimits(**fields)
    assert SafetyLimits().max_step == pytest.approx(0.025)


def test_unknown_action_mode_is_rejected():
    with pytest.raises(ValueError, match='action_mode'):
        SafetyFilter(LIMITS, 'joint')
    with pytest.raises(ValueError, match='action_mode'):
        hold_action('joint', 1.0)


def test_safe_delta_action_passes_unchanged():
    action = np.array([0.01, -0.02, 0.01, 0.05, 0.0, -0.1, 0.3])
    result = SafetyFilter(LIMITS, 'delta').apply(action, EE, 0.05)
    assert not result.held and result.issues == []
    np.testing.assert_allclose(result.action, action)


@pytest.mark.parametrize('bad', [
    [0.0] * 6, [0.0] * 8, [[0.0] * 7], 'forward', None, [0.0, 'x', 0, 0, 0, 0, 1],
])
def test_wrong_shape_holds_with_previous_gripper(bad):
    safety = SafetyFilter(LIMITS, 'delta')
    safety.apply([0, 0, 0, 0, 0, 0, 0.2], EE, 0.0)
    result = safety.apply(bad, EE, 0.0)
    assert result.held and _codes(result) == ['bad_shape'] and _levels(result) == {'error'}
    np.testing.assert_array_equal(result.action, [0, 0, 0, 0, 0, 0, 0.2])


@pytest.mark.parametrize('index', range(7))
@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_non_finite_delta_holds(index, value):
    action = np.full(7, 0.01)
    action[index] = value
    result = SafetyFilter(LIMITS, 'delta').apply(action, EE, 0.0)
    assert result.held and _codes(result) == ['non_finite'] and _levels(result) == {'error'}
    np.testing.assert_array_equal(result.action, hold_action('delta', 1.0))


@pytest.mark.parametrize('age', [None, 0.21, 5.0, math.nan, math.inf, 'old'])
def test_stale_or_missing_observation_holds(age):
    safety = SafetyFilter(LIMITS, 'delta')
    safety.apply([0, 0, 0, 0, 0, 0, 0.0], EE, 0.0)  # gripper closed on an object
    result = safety.apply([0.01, 0, 0, 0, 0, 0, 1.0], EE, age)
    assert result.held and _codes(result) == ['stale_observation']
    assert result.issues[0].level == 'error'
    np.testing.assert_array_equal(result.action, [0, 0, 0, 0, 0, 0, 0.0])  # stays closed
    assert not safety.apply([0.01, 0, 0, 0, 0, 0, 1.0], EE, 0.2).held  # at the timeout: fresh


def test_every_refusal_is_reported_together():
    result = SafetyFilter(LIMITS, 'delta').apply([math.nan] * 7, [math.nan] * 3, None)
    assert result.held
    assert _codes(result) == ['stale_observation', 'bad_ee_pose', 'non_finite']


def test_delta_translation_above_speed_is_shortened_along_its_direction():
    action = np.array([0.06, 0.08, 0.0, 0.0, 0.0, 0.0, 1.0])  # 0.1 m per step
    result = SafetyFilter(LIMITS, 'delta').apply(action, EE, 0.0)
    assert not result.held and _codes(result) == ['linear_speed']
    assert result.issues[0].level == 'warn'
    np.testing.assert_allclose(result.action[:3], [0.03, 0.04, 0.0])
    np.testing.assert_allclose(result.action[3:], action[3:])


def test_delta_rotation_above_speed_is_shortened_along_its_direction():
    action = np.array([0.0, 0.0, 0.0, 0.3, 0.0, -0.4, 1.0])  # 0.5 rad per step
    result = SafetyFilter(LIMITS, 'delta').apply(action, EE, 0.0)
    assert not result.held and _codes(result) == ['angular_speed']
    np.testing.assert_allclose(result.action[3:6], [0.12, 0.0, -0.16])


def test_huge_delta_keeps_its_direction():
    action = np.array([1e308, -1e308, 0.0, 1e308, 1e308, 0.0, 1.0])
    result = SafetyFilter(LIMITS, 'delta').apply(action, EE, 0.0)
    np.testing.assert_allclose(result.action[:3], [STEP, -STEP, 0.0] / np.sqrt(2))
    np.testing.assert_allclose(result.action[3:6], [TURN, TURN, 0.0] / np.sqrt(2))


def test_delta_target_outside_workspace_is_clamped():
    ee = np.array([0.79, 0.0, 0.01])
    result = SafetyFilter(LIMITS, 'delta').apply([0.03, 0.0, -0.03, 0, 0, 0, 1.0], ee, 0.0)
    assert not result.held and _codes(result) == ['workspace']
    np.testing.assert_allclose(result.action[:3], [0.01, 0.0, -0.01])


def test_tcp_outside_workspace_is_brought_back_at_the_speed_limit():
    ee = np.array([1.2, 0.0, 0.25])
    result = SafetyFilter(LIMITS, 'delta').apply([0.0] * 6 + [1.0], ee, 0.0)
    assert _codes(result) == ['workspace']
    np.testing.assert_allclose(result.action[:3], [-STEP, 0.0, 0.0])


@pytest.mark.parametrize('mode', ['delta', 'absolute'])
@pytest.mark.parametrize('gripper, clipped', [(1.5, 1.0), (-0.2, 0.0), (1e300, 1.0)])
def test_gripper_outside_range_is_clipped(mode, gripper, clipped):
    action = [0.0] * 6 + [gripper] if mode == 'delta' else _absolute(EE, gripper=gripper)
    result = SafetyFilter(LIMITS, mode).apply(action, EE, 0.0, ORN)
    assert not result.held and _codes(result) == ['gripper_range']
    assert result.action[-1] == clipped


def test_nan_gripper_holds_in_absolute_mode():
    safety = SafetyFilter(LIMITS, 'absolute')
    result = safety.apply(_absolute(EE, gripper=math.nan), EE, 0.0, ORN)
    assert result.held and _codes(result) == ['non_finite']
    np.testing.assert_allclose(result.action, _absolute(EE, gripper=1.0))


def test_safe_absolute_action_passes_with_normalised_quaternion():
    target = EE + [0.01, 0.02, -0.02]
    result = SafetyFilter(LIMITS, 'absolute').apply(_absolute(target, 2 * ORN), EE, 0.0, ORN)
    assert not result.held and result.issues == []
    np.testing.assert_allclose(result.action, _absolute(target))


def test_absolute_target_far_away_is_approached_at_the_speed_limit():
    result = SafetyFilter(LIMITS, 'absolute').apply(
        _absolute(EE + [0.0, 0.3, -0.4]), EE, 0.0, ORN)
    assert not result.held and _codes(result) == ['linear_speed']
    np.testing.assert_allclose(result.action[:3], EE + [0.0, 0.03, -0.04])


def test_absolute_rotation_is_approached_at_the_speed_limit():
    goal = quat_multiply(quat_from_rotvec(np.array([0.0, 0.0, 1.0])), ORN)
    result = SafetyFilter(LIMITS, 'absolute').apply(_absolute(EE, goal), EE, 0.0, ORN)
    assert _codes(result) == ['angular_speed']
    expected = quat_multiply(quat_from_rotvec(np.array([0.0, 0.0, TURN])), ORN)
    np.testing.assert_allclose(result.action[3:7], expected, atol=1e-12)


def test_absolute_target_outside_workspace_is_clamped():
    ee = np.array([0.2, 0.39, 0.01])
    result = SafetyFilter(LIMITS, 'absolute').apply(
        _absolute([0.19, 0.41, -0.01]), ee, 0.0, ORN)
    assert _codes(result) == ['workspace']
    np.testing.assert_allclose(result.action[:3], [0.2, 0.4, 0.0])


def test_absolute_hold_uses_the_measured_pose_then_the_last_accepted_one():
    safety = SafetyFilter(LIMITS, 'absolute')
    turned = quat_multiply(quat_from_rotvec(np.array([0.0, 0.0, 0.1])), ORN)
    result = safety.apply(_absolute(EE, [0.0, 0.0, 0.0, 0.0]), EE, 0.0, turned)
    assert result.held and _codes(result) == ['bad_quaternion']
    np.testing.assert_allclose(result.action, _absolute(EE, turned, 1.0))
    accepted = safety.apply(_absolute(EE + 0.01, gripper=0.0), EE, 0.0, ORN).action
    for ee, orn in (([math.nan] * 3, ORN), (EE, None), (EE, [0.0] * 4), (None, 'q')):
        result = safety.apply(_absolute(EE), ee, 0.0, orn)
        assert result.held and _codes(result) == ['bad_ee_pose']
    np.testing.assert_allclose(result.action, accepted)
    safety.reset()
    np.testing.assert_allclose(safety.hold_action(),
                               _absolute([0.5, 0.0, 0.25], ORN, 1.0))  # box centre, down


def test_absolute_hold_action_needs_a_pose():
    with pytest.raises(ValueError, match='position'):
        hold_action('absolute', 1.0, EE)
    np.testing.assert_allclose(hold_action('absolute', 0.5, EE, 3 * ORN), _absolute(EE))


@pytest.mark.parametrize('mode', ['delta', 'absolute'])
def test_fuzz_always_finite_right_shape_inside_limits(mode):
    rng = np.random.default_rng(3)
    safety = SafetyFilter(LIMITS, mode)
    size = 7 if mode == 'delta' else 8
    specials = np.array([math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-320, 0.0])
    for _ in range(2000):
        length = size if rng.random() < 0.7 else int(rng.integers(0, 12))
        action = rng.normal(scale=10.0 ** rng.integers(-3, 4), size=length)
        mask = rng.random(length) < 0.1
        action[mask] = rng.choice(specials, size=int(mask.sum()))
        ee = rng.uniform(-0.5, 1.5, size=3)
        if rng.random() < 0.05:
            ee[rng.integers(3)] = rng.choice(specials)
        orn = rng.normal(size=4) if rng.random() < 0.95 else np.zeros(4)
        age = rng.choice([None, 0.0, 0.1, 0.3, math.nan])
        result = safety.apply(action, ee, age, orn)
        assert result.action.shape == (size,)
        assert np.isfinite(result.action).all()
        assert 0.0 <= result.action[-1] <= 1.0
        assert result.held == any(issue.level == 'error' for issue in result.issues)
        if not result.held:
            target = result.action[:3] if mode == 'absolute' else ee + result.action[:3]
            assert np.linalg.norm(target - ee) <= STEP * (1 + 1e-9)
            if mode == 'delta':
                assert np.linalg.norm(result.action[3:6]) <= TURN * (1 + 1e-9)
            else:
                assert np.linalg.norm(result.action[3:7]) == pytest.approx(1.0)
            if LIMITS.workspace.clamp(ee)[1] is False:
                assert not LIMITS.workspace.clamp(target)[1] or np.allclose(
                    LIMITS.workspace.clamp(target)[0], target)
