"""Tests of simulator configuration validation and YAML round trips."""

import pytest
from visual_rl_stack.sim.config import CameraSpec, default_cameras, SimConfig, TASK_NAMES
from visual_rl_stack.sim.tasks import make_task, TASKS


def test_round_trip_through_dict():
    config = SimConfig(task='push', control_hz=20.0, action_mode='absolute')
    assert SimConfig.from_dict(config.to_dict()) == config


def test_default_cameras_are_front_side_wrist():
    assert [c.name for c in default_cameras()] == ['front', 'side', 'wrist']
    assert default_cameras()[2].mount == 'wrist'


@pytest.mark.parametrize('bad, message', [
    ({'task': 'juggle'}, 'known tasks'),
    ({'control_hz': 0.0}, 'positive'),
    ({'physics_hz': 245.0}, 'integer multiple'),
    ({'action_mode': 'joint'}, 'action_mode'),
    ({'flavour': 1}, 'unknown sim config keys'),
])
def test_invalid_config_is_rejected_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        SimConfig.from_dict(bad)


def test_camera_spec_needs_a_pose():
    with pytest.raises(ValueError, match='eye and target'):
        CameraSpec('top')


def test_unknown_task_lists_the_known_names():
    with pytest.raises(ValueError) as err:
        make_task('juggle')
    for name in TASK_NAMES:
        assert name in str(err.value)


def test_registry_matches_the_configurable_task_names():
    assert tuple(TASKS) == TASK_NAMES
