"""Off-policy online fine-tuning in the policy node over DDS: updates, saves, resumes, guards."""

import json
import time

from conftest import make_residual_run, spin_until, tiny_lift_bc
import numpy as np
from policy_harness import Harness
import pytest
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, Float32
import torch
from visual_rl_stack.core.policy import PolicyOptions
from visual_rl_stack.evaluation.ros_eval import evaluate_via_ros, OnlineFinetune
from visual_rl_stack.residual_policy.policy_node import PolicyNode
from visual_rl_stack.residual_policy.resfit.agent import ResFiTAgent
from visual_rl_stack.residual_policy.resfit.online import EPISODES, REPLAY_FILE, STATE_FILE
from visual_rl_stack.ros import topics

#: A small learner that starts updating after a few steps.
QUICK = {'hidden_dims': (32,), 'critic_hidden_dims': (32,), 'batch_size': 8, 'utd': 1.0,
         'actor_delay': 1, 'warmup_steps': 5, 'critic_warmup_updates': 0}
REWARD = '/test/reward'


@pytest.fixture(scope='module')
def bc_run(tmp_path_factory):
    """Record one lift episode and train a tiny state-based BC run for a few steps."""
    return tiny_lift_bc(tmp_path_factory.mktemp('resfit_online'))


def _replay_size(out) -> int:
    with np.load(out / REPLAY_FILE) as replay:
        return len(replay['reward'])


def test_between_episodes_updates_save_and_resume(ros_context, bc_run, tmp_path):
    """Every recorded step after the warm-up earns one update; a new session goes on."""
    run = make_residual_run(bc_run, tmp_path / 'start', kind='resfit', **QUICK)
    out = tmp_path / 'online'
    finetune = OnlineFinetune(str(out), updates='between_episodes')
    first = evaluate_via_ros('lift', str(run), 2, 1000, progress=False,
                             options=PolicyOptions(device='cpu'), context=ros_context,
                             finetune=finetune)
    steps = sum(r['steps'] for r in first['per_episode'])
    assert first['finetune'] == {'out': str(out), 'episodes': 2,
                                 'updates': steps - QUICK['warmup_steps']}
    for name in ('config.json', 'checkpoint', 'residual', STATE_FILE, REPLAY_FILE, EPISODES):
        assert (out / name).exists(), name
    assert _replay_size(out) == steps  # every executed step, none of the unexecuted last ones
    rows = [json.loads(line) for line in (out / EPISODES).read_text().splitlines()]
    assert [r['episode'] for r in rows] == [1, 2] and rows[-1]['steps'] == steps
    start = ResFiTAgent.from_checkpoint(run / 'residual')
    tuned = ResFiTAgent.from_checkpoint(out / 'residual')
    pairs = zip(start.actor.parameters(), tuned.actor.parameters())
    assert any(not torch.equal(a, b) for a, b in pairs)

    second = evaluate_via_ros('lift', str(run), 1, 1002, progress=False,
                              options=PolicyOptions(device='cpu'), context=ros_context,
                              finetune=finetune)
    more = second['per_episode'][0]['steps']
    assert second['finetune']['episodes'] == 3
    assert second['finetune']['updates'] == steps + more - QUICK['warmup_steps']
    assert _replay_size(out) == steps + more


def test_background_updates_run_while_the_episode_runs(ros_context, bc_run, tmp_path):
    """Updates run in the node's thread as data arrives, with demonstrations in the batches."""
    run = make_residual_run(bc_run, tmp_path / 'start', kind='resfit', **QUICK)
    out = tmp_path / 'online'
    result = evaluate_via_ros('lift', str(run), 1, 1000, progress=False,
                              options=PolicyOptions(device='cpu'), context=ros_context,
                              finetune=OnlineFinetune(str(out), utd=0.5,
                                                      demos=str(bc_run.parent / 'data')))
    assert result['finetune']['episodes'] == 1
    assert result['finetune']['updates'] >= 1
    assert (out / STATE_FILE).exists() and _replay_size(out) == result['per_episode'][0]['steps']


def test_bad_rewards_hold_the_arm_and_teach_nothing(ros_context, bc_run, lift_step, tmp_path):
    """A NaN reward and a silent reward topic each hold still with a diagnostic; limits act."""
    robot, task_state = lift_step
    run = make_residual_run(bc_run, tmp_path / 'start', kind='resfit', **QUICK)
    with pytest.raises(ValueError, match='sparse reward'):  # demos cannot pay a dense reward
        PolicyNode(context=ros_context, parameter_overrides=[
            Parameter('policy', value=str(run)), Parameter('finetune', value=True),
            Parameter('finetune_out', value=str(tmp_path / 'd')),
            Parameter('reward_topic', value=REWARD),
            Parameter('finetune_demos', value=str(bc_run.parent / 'data'))])
    node = PolicyNode(context=ros_context, parameter_overrides=[
        Parameter('policy', value=str(run)), Parameter('device', value='cpu'),
        Parameter('finetune', value=True), Parameter('finetune_out', value=str(tmp_path / 'o')),
        Parameter('reward_topic', value=REWARD), Parameter('observation_timeout', value=1.0),
        Parameter('max_linear_speed', value=0.01), Parameter('active_on_start', value=True)])
    harness = Harness(ros_context, node)
    reward = harness.node.create_publisher(Float32, REWARD, topics.RELIABLE_QOS)
    success = harness.node.create_publisher(Bool, topics.TASK_SUCCESS, topics.RELIABLE_QOS)
    assert spin_until(harness.executor, lambda: reward.get_subscription_count() > 0)

    def step(value, offset):
        success.publish(Bool(data=False))
        reward.publish(Float32(data=value))
        stamp = harness.publish(robot, task_state, time.time() + offset)
        assert spin_until(harness.executor, lambda: harness.twist_at(stamp))
        twist = harness.twist_at(stamp)[0].twist
        return np.array([twist.linear.x, twist.linear.y, twist.linear.z])

    try:
        for i in range(3):  # fine-tuning steps: the filter's speed limit still holds
            assert np.linalg.norm(step(0.0, 0.001 * i)) <= 0.01 * (1 + 1e-6)
        recorded = node.learner.steps
        assert recorded == 2  # the first step's reward paid for nothing

        held = step(float('nan'), 0.01)
        assert held.tolist() == [0.0] * 3
        assert spin_until(harness.executor, lambda: any(
            'not finite' in m for m in harness.safety_messages()))
        step(0.0, 0.011)  # pays for nothing: the held step was not recorded
        assert node.learner.steps == recorded

        # The reward topic goes silent: observations alone make no step; the arm holds.
        count = len(harness.twists)
        harness.publish(robot, task_state, time.time() + 0.02)
        assert spin_until(harness.executor, lambda: any(
            'no complete observation step' in m for m in harness.safety_messages()), timeout=5)
        assert all(t.twist.linear.x == 0.0 for t in harness.twists[count:])
        assert node.learner.steps == recorded
    finally:
        harness.close(node)
    assert (tmp_path / 'o' / STATE_FILE).exists()  # destroying the node saved the session


def test_the_online_latency_bench_times_both_update_modes(bc_run):
    """``vrl bench rl``'s online rows: control steps and episode ends, updates in each mode."""
    from visual_rl_stack.residual_policy.resfit.bench import online_step_latency
    from visual_rl_stack.residual_policy.resfit.config import UPDATE_MODES
    result = online_step_latency('lift', str(bc_run), episodes=1)
    for mode in UPDATE_MODES:
        row = result[mode]
        assert row['steps'] > 0 and row['updates'] > 0
        assert 0 < row['step_median_ms'] <= row['step_p99_ms']
    # Between episodes every earned update runs at the episode end: one per recorded step
    # (all but the last action, whose reward never came) once the first 3-step transition
    # exists, i.e. from the third recorded step on.
    between = result['between_episodes']
    assert between['updates'] == result['utd'] * (between['steps'] - 1 - 2)
