"""Tests of the tabletop simulator: robot control, actions, tasks, determinism."""

import numpy as np
import pytest
from visual_rl_stack.sim.config import SimConfig, TASK_NAMES
from visual_rl_stack.sim.robot import DOWN, quat_from_rotvec, quat_multiply
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.tasks import task_for_state, TASKS

HOLD = np.array([0, 0, 0, 0, 0, 0, 1.0])


@pytest.fixture(scope='module')
def sim():
    s = TabletopSim(SimConfig(task='lift', cameras=()))
    yield s
    s.close()


def test_ik_reaches_a_pose_within_5mm(sim):
    sim.reset(seed=0)
    target = np.array([0.55, 0.12, 0.18])
    orn = quat_multiply(quat_from_rotvec(np.array([0.0, 0.0, 0.4])), np.array(DOWN))
    for _ in range(30):
        sim.command_pose(target, orn, 1.0)
        sim.advance()
    state = sim.robot_state()
    assert np.linalg.norm(state.ee_position - target) < 0.005
    assert abs(np.dot(state.ee_orientation, orn)) > 0.999


def test_robot_state_has_arm_and_finger_joints(sim):
    sim.reset(seed=0)
    state = sim.robot_state()
    assert len(state.joint_names) == 9 and state.joint_names[-1] == 'panda_finger_joint2'
    assert state.joint_positions.shape == (9,)
    assert state.gripper_width == pytest.approx(0.08, abs=1e-3)


def test_gripper_closes_on_command(sim):
    sim.reset(seed=0)
    for _ in range(3):
        sim.step(np.array([0, 0, 0, 0, 0, 0, 0.0]))
    assert sim.robot_state().gripper_width < 0.005


@pytest.mark.parametrize('action', [np.zeros(6), np.zeros(8), np.array([np.nan] + [0.0] * 6),
                                    np.array([0, 0, np.inf, 0, 0, 0, 1.0])])
def test_bad_actions_raise(sim, action):
    sim.reset(seed=0)
    with pytest.raises(ValueError):
        sim.step(action)


def test_out_of_workspace_target_is_clamped(sim):
    sim.reset(seed=0)
    assert sim.command_pose([0.5, 0.0, -0.2], DOWN, 1.0)
    assert sim.commanded.position[2] == pytest.approx(sim.workspace.lo[2])
    sim.reset(seed=0)
    flags = [sim.step(np.array([0.05, 0, 0, 0, 0, 0, 1.0])).info['clamped'] for _ in range(12)]
    assert not flags[0] and flags[-1]
    assert sim.commanded.position[0] == pytest.approx(sim.workspace.hi[0])


def test_time_advances_one_control_period_per_step(sim):
    sim.reset(seed=0)
    for _ in range(3):
        sim.step(HOLD)
    assert sim.step_count == 3
    assert sim.sim_time == pytest.approx(0.3)


def test_same_seed_same_trajectory_regardless_of_history(sim):
    rng = np.random.default_rng(0)
    actions = [np.concatenate([rng.uniform(-0.05, 0.05, 6), [rng.uniform()]]) for _ in range(8)]

    def rollout():
        sim.reset(seed=11)
        for a in actions:
            sim.step(a)
        return np.concatenate([sim.robot_state().joint_positions, *sim.task_state().values()])

    first = rollout()
    sim.reset(seed=3)
    for a in actions[::-1]:
        sim.step(a)
    fresh = TabletopSim(SimConfig(task='lift', cameras=()))
    fresh_state = None
    try:
        fresh.reset(seed=11)
        for a in actions:
            fresh.step(a)
        fresh_state = np.concatenate([fresh.robot_state().joint_positions,
                                      *fresh.task_state().values()])
    finally:
        fresh.close()
    np.testing.assert_array_equal(rollout(), first)
    np.testing.assert_array_equal(fresh_state, first)


@pytest.mark.parametrize('task', TASK_NAMES)
def test_reset_randomises_from_seed_and_starts_unsolved(sim, task):
    sim.reset(seed=1, task=task)
    a = sim.task_state()
    assert not sim.success()
    sim.reset(seed=2)
    b = sim.task_state()
    sim.reset(seed=1)
    c = sim.task_state()
    assert any(not np.allclose(a[k], b[k]) for k in a)
    for k in a:
        np.testing.assert_allclose(a[k], c[k])
    assert sim.instruction


def test_switching_task_at_reset(sim):
    sim.reset(seed=0, task='peg_insert')
    assert 'peg_position' in sim.task_state()
    sim.reset(seed=0, task='lift')
    assert set(sim.task_state()) == {'cube_position', 'cube_orientation'}


def test_absolute_mode_bounds_and_step():
    sim = TabletopSim(SimConfig(task='reach', action_mode='absolute', cameras=()))
    try:
        low, high = sim.action_space_bounds()
        assert low.shape == high.shape == (8,)
        sim.reset(seed=0)
        for _ in range(20):
            sim.step(np.array([0.5, 0.1, 0.2, *DOWN, 1.0]))
        assert np.linalg.norm(sim.robot_state().ee_position - [0.5, 0.1, 0.2]) < 0.005
    finally:
        sim.close()


def test_every_task_declares_its_privileged_state_fields_and_is_told_by_them():
    for name in TASK_NAMES:
        sim = TabletopSim(SimConfig(task=name, cameras=()))
        try:
            sim.reset(seed=0)
            fields = tuple(sim.task_state())
        finally:
            sim.close()
        assert fields == TASKS[name].state_fields, name
        assert task_for_state(reversed(fields)) == name
    with pytest.raises(ValueError, match='no task has'):
        task_for_state(['cube_position'])
