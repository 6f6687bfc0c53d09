"""The world-model node over real DDS: stages per step, predicted reward, bad input, the graph."""

from conftest import spin_until
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, String
from std_srvs.srv import Trigger
import torch
from visual_rl_stack.core.checkpoints import save_checkpoint
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import GraphRunner
from visual_rl_stack.ros.msg_conversions import (array_to_image, make_joint_state,
                                                 make_labelled_array, make_pose_stamped,
                                                 stamp_from_seconds)
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.world_model.mae.model import MAE_DIR, MAE_KIND, MAEConfig, MultiViewMAE
from visual_rl_stack.world_model.world_model_node import WorldModelNode

TINY = MAEConfig(views=('front', 'wrist'), image_size=32, patch_size=8, width=32,
                 encoder_layers=1, decoder_layers=1, heads=2, stem_channels=(16, 16))


class Probe:
    """Publishes what the simulator would and records the node's outputs."""

    def __init__(self, context, node=None):
        self.node = Node('world_model_probe', context=context)
        self.got = {'stage': [], 'progress': [], 'reward': [], 'keyframe': [], 'diags': []}
        sub, reliable = self.node.create_subscription, topics.RELIABLE_QOS
        for key, msg_type, topic in (('stage', String, topics.WORLD_MODEL_STAGE),
                                     ('progress', Float32, topics.WORLD_MODEL_PROGRESS),
                                     ('reward', Float32, topics.WORLD_MODEL_REWARD),
                                     ('keyframe', Bool, topics.WORLD_MODEL_KEYFRAME)):
            sub(msg_type, topic, lambda m, k=key: self.got[k].append(m.data), reliable)
        sub(DiagnosticArray, topics.DIAGNOSTICS,
            lambda m: self.got['diags'].extend(s for s in m.status
                                               if s.name.startswith('world_model_node')),
            reliable)
        pub = self.node.create_publisher
        self.instruction = pub(String, topics.TASK_INSTRUCTION, topics.LATCHED_QOS)
        self.joints = pub(JointState, topics.JOINT_STATES, reliable)
        self.pose = pub(PoseStamped, topics.EE_POSE, reliable)
        self.state = pub(Float32MultiArray, topics.TASK_STATE, reliable)
        self.image = pub(Image, topics.MULTIVIEW_IMAGE, topics.SENSOR_QOS)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        if node is not None:
            self.executor.add_node(node)

    def spin_until(self, predicate, timeout=10.0):
        return spin_until(self.executor, predicate, timeout)

    def step(self, sim: TabletopSim, stamp_s: float, joints=None) -> None:
        """Publish one step of ``sim`` (joint positions replaced by ``joints`` when given)."""
        robot, stamp = sim.robot_state(), stamp_from_seconds(stamp_s)
        self.state.publish(make_labelled_array(sim.task_state()))
        self.pose.publish(make_pose_stamped(robot.ee_position, robot.ee_orientation, stamp,
                                            topics.WORLD_FRAME))
        positions = robot.joint_positions if joints is None else joints
        count = len(robot.joint_names)
        before = len(self.got['keyframe']) + len(self.got['diags'])
        self.spin_until(lambda: False, timeout=0.1)
        self.joints.publish(make_joint_state(robot.joint_names, positions, [0.0] * count,
                                             [0.0] * count, stamp))
        self.spin_until(lambda: len(self.got['keyframe']) + len(self.got['diags']) > before,
                        timeout=5.0)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def node_with(context, **params) -> WorldModelNode:
    return WorldModelNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in {'diagnostic_period': 0.2, **params}.items()])


@pytest.fixture
def stack_sim():
    sim = TabletopSim(SimConfig(task='stack', cameras=()))
    sim.reset(seed=3)
    yield sim
    sim.close()


def test_stage_progress_and_keyframes_per_step_and_bad_input(ros_context, stack_sim):
    node = node_with(ros_context)
    probe = Probe(ros_context, node)
    try:
        assert probe.spin_until(lambda: node.stage_pub.get_subscription_count() > 0
                                and probe.joints.get_subscription_count() > 0)
        probe.instruction.publish(String(data=stack_sim.instruction))
        assert probe.spin_until(lambda: node.core.instruction == stack_sim.instruction)
        for k in range(3):
            probe.step(stack_sim, 0.1 * k)
            stack_sim.step(np.array([0.0, 0.0, -0.02, 0.0, 0.0, 0.0, 1.0]))
        assert probe.spin_until(lambda: len(probe.got['stage']) == len(probe.got['progress'])
                                == len(probe.got['keyframe']) == 3), probe.got
        assert probe.got['stage'][0] == '1 reach green cube'
        assert 0.0 <= probe.got['progress'][0] < 0.2
        assert probe.got['progress'][2] > probe.got['progress'][0]
        assert probe.got['reward'] == []
        # NaN joints: an ERROR diagnostic and no keyframe for that step.
        joint_count = len(stack_sim.robot_state().joint_names)
        probe.step(stack_sim, 0.3, joints=[float('nan')] * joint_count)
        assert probe.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR
                                            and 'joints' in s.message
                                            for s in probe.got['diags']))
        assert len(probe.got['keyframe']) == 3
        # An instruction the planner cannot ground: no stage is published, and it says why.
        stages = len(probe.got['stage'])
        probe.instruction.publish(String(data='fold the towel into a swan'))
        probe.spin_until(lambda: False, timeout=0.3)
        probe.step(stack_sim, 0.4)
        assert probe.spin_until(lambda: any('cannot plan' in s.message
                                            for s in probe.got['diags']))
        assert len(probe.got['stage']) == stages
        assert probe.spin_until(lambda: any(kv.key == 'latency_p99_ms' for s in probe.got['diags']
                                            for kv in s.values))
    finally:
        probe.close()
        node.destroy_node()


def test_a_world_model_predicts_reward_from_the_tiled_views(ros_context, stack_sim, tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / 'wm' / MAE_DIR, MultiViewMAE(TINY), TINY.to_dict(), {}, MAE_KIND)
    node = node_with(ros_context, world_model=str(tmp_path / 'wm'))
    probe = Probe(ros_context, node)
    try:
        assert probe.spin_until(lambda: probe.image.get_subscription_count() > 0
                                and probe.joints.get_subscription_count() > 0)
        probe.instruction.publish(String(data=stack_sim.instruction))
        assert probe.spin_until(lambda: node.core.instruction == stack_sim.instruction)
        probe.step(stack_sim, 0.0)
        assert probe.spin_until(lambda: any('views' in s.message and s.level ==
                                            DiagnosticStatus.WARN for s in probe.got['diags']))
        assert probe.got['reward'] == [] and probe.got['stage'] == ['1 reach green cube']
        tiled = np.full((32, 64, 3), 120, np.uint8)
        probe.image.publish(array_to_image(tiled, 'rgb8', stamp_from_seconds(0.1), 'multiview'))
        probe.spin_until(lambda: False, timeout=0.3)
        probe.step(stack_sim, 0.1)
        assert probe.spin_until(lambda: len(probe.got['reward']) == 1)
        assert 0.0 <= probe.got['reward'][0] <= 1.0
        # A tiled image of the wrong size is refused with a diagnostic.
        probe.image.publish(array_to_image(np.zeros((16, 48, 3), np.uint8), 'rgb8',
                                           stamp_from_seconds(0.2), 'multiview'))
        assert probe.spin_until(lambda: any('refused' in s.message for s in probe.got['diags']))
    finally:
        probe.close()
        node.destroy_node()


def test_stage_and_progress_at_the_control_rate_in_the_lockstep_sim_graph(ros_context):
    overrides = {'sim_node': {'mode': 'lockstep', 'task': 'lift', 'cameras': ['front'],
                              'image_width': 32, 'image_height': 32, 'seed': 0},
                 'camera_node': {'cameras': ['front'], 'image_width': 32, 'image_height': 32,
                                 'publish_points': False}}
    probe = Probe(ros_context)
    try:
        with GraphRunner('sim', overrides, ros_context, without=['affordance_node']) as runner:
            node = runner.nodes['world_model_node']
            reset = probe.node.create_client(Trigger, topics.SIM_RESET)
            step = probe.node.create_client(Trigger, topics.SIM_STEP)
            assert probe.spin_until(lambda: step.service_is_ready() and reset.service_is_ready()
                                    and node.stage_pub.get_subscription_count() > 0)
            future = reset.call_async(Trigger.Request())
            assert probe.spin_until(future.done) and future.result().success
            assert probe.spin_until(lambda: node.core.instruction is not None)
            counts = []
            for _ in range(6):
                before = len(probe.got['stage'])
                future = step.call_async(Trigger.Request())
                assert probe.spin_until(future.done) and future.result().success
                probe.spin_until(lambda: len(probe.got['stage']) > before, timeout=5.0)
                probe.spin_until(lambda: False, timeout=0.1)  # and nothing more for this step
                counts.append(len(probe.got['stage']))
            # One stage and one progress per control step once the episode is planned.
            assert np.all(np.diff(counts) == 1), (counts, [s.message for s in probe.got['diags']])
            assert probe.spin_until(lambda: len(probe.got['progress']) == len(probe.got['stage']))
            assert probe.got['stage'][-1] == '1 reach red cube'
    finally:
        probe.close()
