"""Tests that the scripted experts solve every task (two seeds each; 100 seeds are a benchmark)."""

import numpy as np
import pytest
from visual_rl_stack.evaluation.episodes import evaluate_expert
from visual_rl_stack.sim.config import SimConfig, TASK_NAMES
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.robot import DOWN, quat_from_rotvec, quat_multiply, RobotState
from visual_rl_stack.sim.scene import TabletopSim


@pytest.mark.parametrize('task', TASK_NAMES)
def test_expert_solves_task(task):
    result = evaluate_expert(task, episodes=3, seed_start=1000)
    assert result['successes'] == 3, result


def test_expert_in_absolute_mode_with_noise():
    result = evaluate_expert('pick_place', episodes=2, seed_start=2000, noise=0.05,
                             action_mode='absolute')
    assert result['successes'] == 2, result


def test_approach_jitter_moves_the_pregrasp_point_and_the_expert_still_grasps():
    sim = TabletopSim(SimConfig(task='lift', cameras=()))
    try:
        offsets = []
        for seed in (1000, 1001):
            sim.reset(seed=seed)
            expert = make_expert('lift', 'delta', 0.0, np.random.default_rng(seed), 0.03)
            offsets.append(expert.approach_offset)
            for _ in range(sim.max_episode_steps):
                if sim.step(expert.act(sim)).success:
                    break
            assert sim.task.success()
        assert all(0 < np.linalg.norm(o) <= 0.03 and o[2] == 0 for o in offsets)
        assert not np.allclose(offsets[0], offsets[1])
        assert not make_expert('lift').approach_offset.any()
    finally:
        sim.close()
    with pytest.raises(ValueError, match='approach_jitter'):
        make_expert('lift', approach_jitter=-0.01)


class JammedPushView:
    """A push scene frozen with the hand pitched and its fingertips pinned on the table."""

    max_delta, max_rot_delta = 0.05, 0.2

    def __init__(self):
        """Tilt the hand 0.6 rad, as a block wedged under the fingers leaves it."""
        self.ee = np.array([0.50, 0.0, 0.009])
        self.orientation = quat_multiply(quat_from_rotvec(np.array([0.6, 0.0, 0.0])),
                                         np.array(DOWN))

    def robot_state(self) -> RobotState:
        """Return a TCP that does not move whatever is commanded."""
        return RobotState((), np.zeros(9), np.zeros(9), self.ee, self.orientation, 0.0)

    def task_state(self) -> dict:
        """Return a block and goal that make the back-off move sideways."""
        return {'block_position': np.array([0.538, -0.056, 0.025]),
                'goal_position': np.array([0.526, -0.094, 0.0])}

    def delta_reference(self) -> tuple:
        """Return the pinned pose (the commanded target has settled on it)."""
        return self.ee, self.orientation


def test_push_back_off_that_stops_rising_lifts_straight_up_holding_the_hand():
    view = JammedPushView()
    expert = make_expert('push')
    expert.goto('up')
    first = expert.act(view)
    assert np.linalg.norm(first[:2]) > 0.005 and np.linalg.norm(first[3:6]) > 0.1
    for _ in range(5):
        action = expert.act(view)
    assert expert.phase == 'rise'
    assert np.allclose(action[:2], 0.0) and action[2] > 0.03
    assert np.allclose(action[3:6], 0.0, atol=1e-6)


def test_stack_reports_stages():
    sim = TabletopSim(SimConfig(task='stack', cameras=()))
    try:
        sim.reset(seed=5)
        expert = make_expert('stack', rng=np.random.default_rng(0))
        stages = []
        result = None
        while result is None or not (result.terminated or result.truncated):
            result = sim.step(expert.act(sim))
            stages.append(result.info['stages_completed'])
        assert stages[0] == 0 and stages[-1] == 1 and result.success
    finally:
        sim.close()


def test_unknown_expert_lists_tasks():
    with pytest.raises(ValueError, match='peg_insert'):
        make_expert('juggle')
