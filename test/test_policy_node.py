"""The policy node over real DDS: inactive by default, commands, holds, bad parameters."""

import time

from conftest import spin_until, TINY_BC, tiny_lift_bc
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
import numpy as np
from policy_harness import Harness
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visual_rl_stack.core.policy import PolicyOptions
from visual_rl_stack.perception.preprocess import split_tiled
from visual_rl_stack.residual_policy.diffusion_bc.training.config import BCTrainSettings
from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import train_bc
from visual_rl_stack.residual_policy.policy_node import PARAMS, PolicyNode
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import GraphRunner


@pytest.fixture(scope='module')
def state_run(tmp_path_factory):
    """Record one lift episode and train a tiny state-based run for a few steps."""
    return tiny_lift_bc(tmp_path_factory.mktemp('policy_node'))


def _node(context, run, **params):
    overrides = [Parameter('policy', value=str(run)),
                 Parameter('device', value='cpu'), Parameter('inference_steps', value=2)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return PolicyNode(context=context, parameter_overrides=overrides)


def test_inactive_then_commands_then_holds(ros_context, state_run, lift_step):
    robot, task_state = lift_step
    node = _node(ros_context, state_run, observation_timeout=2.0)
    assert not node.active and node.needs_task and node.action_mode == 'delta'
    harness = Harness(ros_context, node)
    try:
        # (a) Inactive: an observation yields no command.
        harness.publish(robot, task_state, time.time())
        spin_until(harness.executor, lambda: bool(harness.twists), timeout=1.0)
        assert harness.twists == [] and harness.grippers == []

        # (b) Active: a fresh observation yields both commands, with its stamp.
        harness.set_active(True)
        stamp = harness.publish(robot, task_state, time.time() + 0.001)
        assert spin_until(harness.executor, lambda: harness.twist_at(stamp))
        assert spin_until(harness.executor, lambda: bool(harness.grippers))
        twist = harness.twist_at(stamp)[0]
        assert twist.header.frame_id == topics.WORLD_FRAME
        assert np.isfinite([twist.twist.linear.x, twist.twist.angular.z]).all()
        assert 0.0 <= harness.grippers[-1].data <= 0.08

        # (c) NaN in /joint_states: zero twist and a diagnostic naming the reason.
        positions = np.array(robot.joint_positions, dtype=float)
        positions[0] = np.nan
        stamp = harness.publish(robot, task_state, time.time() + 0.002, positions)
        assert spin_until(harness.executor, lambda: harness.twist_at(stamp))
        held = harness.twist_at(stamp)[0].twist
        assert [held.linear.x, held.linear.y, held.linear.z, held.angular.x, held.angular.y,
                held.angular.z] == [0.0] * 6
        assert spin_until(harness.executor, lambda: any(
            'NaN' in m and 'joint_positions' in m for m in harness.safety_messages()))

        # (c) A stale stamp: zero twist and a stale-observation diagnostic.
        stamp = harness.publish(robot, task_state, time.time() - 30.0)
        assert spin_until(harness.executor, lambda: harness.twist_at(stamp))
        held = harness.twist_at(stamp)[0].twist
        assert [held.linear.x, held.linear.y, held.linear.z] == [0.0] * 3
        assert spin_until(harness.executor, lambda: any(
            'exceeds the 2.0 s timeout' in m for m in harness.safety_messages()))

        # Deactivated: no more commands.
        harness.set_active(False)
        count = len(harness.twists)
        harness.publish(robot, task_state, time.time() + 0.003)
        spin_until(harness.executor, lambda: len(harness.twists) > count, timeout=0.5)
        assert len(harness.twists) == count
    finally:
        harness.close(node)


def test_invalid_parameters_are_refused(ros_context, state_run, tmp_path):
    with pytest.raises(ValueError, match='parameter policy .* is required'):
        PolicyNode(context=ros_context)
    with pytest.raises(ValueError, match='policy_node: .*neither'):
        PolicyNode(context=ros_context,
                   parameter_overrides=[Parameter('policy', value=str(tmp_path / 'nope'))])
    with pytest.raises(ValueError, match='control_hz'):
        _node(ros_context, state_run, control_hz=0.0)
    with pytest.raises(ValueError, match='workspace_min'):
        _node(ros_context, state_run, workspace_min=[0.1, 0.2])


def test_policy_options_are_the_nodes_parameters_both_ways():
    """One conversion: the node's defaults are the default options, and options round-trip."""
    defaults = {name: spec.default for name, spec in PARAMS.items()}
    assert PolicyOptions.from_ros_parameters(defaults) == PolicyOptions()
    values = PolicyOptions().to_ros_parameters()
    assert values == {name: defaults[name] for name in values}
    chosen = PolicyOptions(device='cpu', num_inference_steps=3, action_steps=2, warm_start=0.5,
                           noise_scale=0.0)
    assert PolicyOptions.from_ros_parameters(chosen.to_ros_parameters()) == chosen
    assert chosen.to_ros_parameters()['noise_scale'] == 0.0  # 0 is deterministic, not unset


def test_split_tiled_refuses_a_mismatched_image():
    tiled = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    views = split_tiled(tiled, ('front', 'side'), (4, 3))
    assert list(views) == ['front', 'side']
    assert np.array_equal(views['side'], tiled[:, 3:])
    with pytest.raises(ValueError, match='image_width'):
        split_tiled(tiled, ('front', 'side', 'wrist'), (4, 3))


def test_closed_loop_in_lockstep(ros_context, state_run):
    overrides = {'sim_node': {'mode': 'lockstep', 'task': 'lift', 'cameras': ['']}}
    with GraphRunner('sim', overrides, ros_context):
        node = _node(ros_context, state_run, active_on_start=True, use_sim_time=True)
        harness, client_node = None, None
        try:
            client_node = Node('policy_loop', context=ros_context)
            twists = []
            client_node.create_subscription(TwistStamped, topics.ARM_DELTA_TWIST, twists.append,
                                            topics.RELIABLE_QOS)
            diags = []
            client_node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, diags.append,
                                            topics.RELIABLE_QOS)
            instructions = []
            client_node.create_subscription(String, topics.TASK_INSTRUCTION, instructions.append,
                                            topics.LATCHED_QOS)
            step = client_node.create_client(Trigger, topics.SIM_STEP)
            harness = SingleThreadedExecutor(context=ros_context)
            harness.add_node(node)
            harness.add_node(client_node)
            assert spin_until(harness, step.service_is_ready)
            # The latched instruction starts an episode (dropping a pending step): let it land
            # in the policy node before stepping, or a step's command may be dropped.
            assert spin_until(harness, lambda: instructions)
            spin_until(harness, lambda: False, timeout=0.5)
            for i in range(3):
                count = len(twists)
                future = step.call_async(Trigger.Request())
                assert spin_until(harness, future.done) and future.result().success
                assert spin_until(harness, lambda: len(twists) > count), f'no command {i}'
            assert node.steps >= 3
            stamps = [t.header.stamp.sec + t.header.stamp.nanosec * 1e-9 for t in twists]
            assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
            # Sim time (use_sim_time) makes the lockstep observations fresh: the policy acts.
            assert not [s for d in diags for s in d.status if s.name == 'policy_node: safety'
                        and any(v.key == 'stale_observation' for v in s.values)]
        finally:
            if harness is not None:
                harness.shutdown()
            if client_node is not None:
                client_node.destroy_node()
            node.destroy_node()


def test_eval_via_ros_matches_in_process(ros_context, state_run):
    """The closed loop through DDS reproduces the in-process evaluation of the same seed."""
    from visual_rl_stack.evaluation.episodes import evaluate
    from visual_rl_stack.evaluation.ros_eval import evaluate_via_ros
    via_ros = evaluate_via_ros('lift', str(state_run), 1, 1000, progress=False,
                               options=PolicyOptions(device='cpu'),
                               context=ros_context)
    in_process = evaluate('lift', str(state_run), 1, 1000, progress=False,
                          options=PolicyOptions(device='cpu'))
    assert via_ros['via_ros'] and via_ros['episodes'] == 1
    ros_row, local_row = via_ros['per_episode'][0], in_process['per_episode'][0]
    assert (ros_row['success'], ros_row['steps']) == (local_row['success'], local_row['steps'])
    # Every step went through the policy node (plus the final observation, answered but
    # not executed): one inference per n_action_steps steps.
    latency = via_ros['inference_latency_ms']
    assert latency['steps'] == ros_row['steps'] + 1
    assert latency['chunks'] == -(-(ros_row['steps'] + 1) // TINY_BC['n_action_steps'])


def test_eval_via_ros_with_an_image_policy(ros_context, state_run):
    """Images travel sim -> camera node (tiled) -> policy node (split) like on a robot."""
    from visual_rl_stack.evaluation.episodes import evaluate
    from visual_rl_stack.evaluation.ros_eval import evaluate_via_ros
    run = state_run.parent / 'run_image'
    train_bc(BCTrainSettings(task='lift', data=str(state_run.parent / 'data'), obs_mode='image',
                             steps=3, batch_size=8, device='cpu'), run,
             config_overrides={**TINY_BC, 'image_channels': (8, 16), 'num_keypoints': 8,
                               'image_feature_dim': 16}, progress=False)
    via_ros = evaluate_via_ros('lift', str(run), 1, 1001, progress=False,
                               options=PolicyOptions(device='cpu'),
                               context=ros_context)
    in_process = evaluate('lift', str(run), 1, 1001, progress=False,
                          options=PolicyOptions(device='cpu'))
    assert via_ros['per_episode'][0]['steps'] == in_process['per_episode'][0]['steps']
    assert via_ros['inference_latency_ms']['chunks'] >= 1


def test_online_finetuning_through_ros_updates_the_residual(ros_context, state_run, tmp_path):
    """In lockstep, the node collects rewarded transitions and runs PPO between episodes."""
    import json

    import torch
    from conftest import make_residual_run

    from visual_rl_stack.evaluation.ros_eval import evaluate_via_ros, OnlineFinetune
    from visual_rl_stack.residual_policy.resip.agent import ResidualAgent
    run = make_residual_run(state_run, tmp_path / 'residual', hidden_dims=(32,),
                            critic_hidden_dims=(32,))
    out = tmp_path / 'online'
    result = evaluate_via_ros('lift', str(run), 2, 1000, progress=False,
                              options=PolicyOptions(device='cpu'),
                              context=ros_context, finetune=OnlineFinetune(str(out)))
    assert result['finetune']['updates'] == 2 and result['finetune']['episodes'] == 2
    updates = [json.loads(x) for x in (out / 'updates.jsonl').read_text().splitlines()]
    steps = [row['steps'] for row in updates]
    # Every executed step became a transition (the action for the last observation was not).
    assert steps == [r['steps'] for r in result['per_episode']]
    transitions = (out / 'transitions.jsonl').read_text().splitlines()
    assert len(transitions) == sum(steps)
    start = ResidualAgent.from_checkpoint(run / 'residual')
    tuned = ResidualAgent.from_checkpoint(out / 'residual')
    pairs = zip(start.actor.parameters(), tuned.actor.parameters())
    assert any(not torch.equal(a, b) for a, b in pairs)


def test_online_finetuning_on_the_affordance_nodes_dense_reward(ros_context, state_run, tmp_path):
    """With reward_topic /reward/dense the node learns from KAGI's reward, not the sparse one."""
    import json

    from conftest import make_residual_run

    from visual_rl_stack.evaluation.ros_eval import evaluate_via_ros, OnlineFinetune
    run = make_residual_run(state_run, tmp_path / 'residual', hidden_dims=(32,),
                            critic_hidden_dims=(32,))
    out = tmp_path / 'online'
    result = evaluate_via_ros('lift', str(run), 1, 1000, progress=False,
                              options=PolicyOptions(device='cpu'),
                              context=ros_context,
                              finetune=OnlineFinetune(str(out), topics.DENSE_REWARD),
                              extra_views=('front', 'side'))
    assert result['finetune']['updates'] == 1
    rows = [json.loads(x) for x in (out / 'transitions.jsonl').read_text().splitlines()]
    assert len(rows) == result['per_episode'][0]['steps']
    rewards = [row['reward'] for row in rows]
    # The shipped keypoint model planned the episode: progress rewards strictly inside (0, 0.5)
    # (0 once this untrained policy drifts farther from the first waypoint than it started),
    # where the sparse reward is only ever 0 or 1.
    dense = [r for r in rewards if 0.0 < r < 0.5]
    assert len(set(dense)) > 3 and all(0.0 <= r < 0.5 for r in rewards), rewards
