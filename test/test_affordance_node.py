"""The affordance node over real DDS: keypoints, markers, dense reward, diagnostics, re-query."""

from pathlib import Path

from conftest import spin_until
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseArray, PoseStamped, TwistStamped
import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from scripted_backend import render_start, ScriptedBackend
from std_msgs.msg import Float32, String
from std_srvs.srv import Trigger
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import GraphRunner
from visual_rl_stack.ros.msg_conversions import (array_to_image, make_pose_stamped,
                                                 stamp_from_seconds)
from visual_rl_stack.ros.step_messages import camera_messages
from visual_rl_stack.vlm_affordance.affordance_node import AffordanceNode
from visual_rl_stack.vlm_affordance.backends import BACKENDS
from visualization_msgs.msg import Marker, MarkerArray

VIEWS = ('front', 'side')


@pytest.fixture(autouse=True)
def scripted(monkeypatch):
    """Register the scripted backend (and one that points off the image) for these tests."""
    monkeypatch.setitem(BACKENDS, 'scripted', ScriptedBackend)
    monkeypatch.setitem(BACKENDS, 'off_image', lambda path: ScriptedBackend(target=[5e3, 5e3]))


@pytest.fixture(scope='module')
def scene():
    """Render the front and side views and the TCP position of a lift episode's start."""
    return render_start(VIEWS)


class Probe:
    """Records the node's outputs; publishes what the simulator would."""

    def __init__(self, context, node):
        """Create the publishers and subscriptions and wait until the node has matched them."""
        self.node = Node('affordance_probe', context=context)
        self.got = {'keypoints': [], 'markers': [], 'dense': [], 'diags': []}
        sub = self.node.create_subscription
        sub(PoseArray, topics.AFFORDANCE_KEYPOINTS, self.got['keypoints'].append,
            topics.LATCHED_QOS)
        sub(MarkerArray, topics.AFFORDANCE_MARKERS, self.got['markers'].append,
            topics.LATCHED_QOS)
        sub(Float32, topics.DENSE_REWARD, lambda m: self.got['dense'].append(m.data),
            topics.RELIABLE_QOS)
        sub(DiagnosticArray, topics.DIAGNOSTICS,
            lambda m: self.got['diags'].extend(s for s in m.status
                                               if s.name.startswith('affordance_node')),
            topics.RELIABLE_QOS)
        pub = self.node.create_publisher
        self.instruction = pub(String, topics.TASK_INSTRUCTION, topics.LATCHED_QOS)
        self.ee = pub(PoseStamped, topics.EE_POSE, topics.RELIABLE_QOS)
        self.sparse = pub(Float32, topics.TASK_REWARD, topics.RELIABLE_QOS)
        self.camera = {}
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        if node is not None:
            self.executor.add_node(node)

    def spin_until(self, predicate, timeout=10.0):
        """Spin both nodes until ``predicate()`` holds."""
        return spin_until(self.executor, predicate, timeout)

    def publish_views(self, frames, stamp_s, depth=None):
        """Publish every view's colour, intrinsics, depth and pose stamped ``stamp_s``."""
        stamp = stamp_from_seconds(stamp_s)
        for frame in frames.values():
            for topic, msg in camera_messages(frame, stamp):
                if topic == topics.depth_topic(frame.name) and depth is not None:
                    msg = array_to_image(depth, '32FC1', stamp, frame.frame_id)
                if topic not in self.camera:
                    self.camera[topic] = self.node.create_publisher(type(msg), topic,
                                                                    topics.SENSOR_QOS)
                    self.spin_until(lambda: self.camera[topic].get_subscription_count() > 0)
                self.camera[topic].publish(msg)

    def publish_step(self, position, stamp_s, sparse=0.0):
        """Publish one control step: the TCP pose, then the sparse reward."""
        self.ee.publish(make_pose_stamped(position, (1.0, 0.0, 0.0, 0.0),
                                          stamp_from_seconds(stamp_s), topics.WORLD_FRAME))
        self.sparse.publish(Float32(data=float(sparse)))

    def query_status(self):
        """Return the latest 'query' diagnostic that is not the waiting one."""
        done = [s for s in self.got['diags'] if s.name == 'affordance_node: query'
                and 'waiting' not in s.message]
        return done[-1] if done else None

    def close(self):
        """Destroy the probe."""
        self.executor.shutdown()
        self.node.destroy_node()


def _node(context, **params):
    """Start an affordance node on the front and side views with ``params``."""
    params = {'views': list(VIEWS), 'republish_period': 0.2, **params}
    return AffordanceNode(context=context,
                          parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def test_sim_graph_publishes_keypoints_markers_and_a_reward_per_step(ros_context):
    """In lockstep the node plans at reset, rewards every step and re-queries on demand."""
    overrides = {'sim_node': {'mode': 'lockstep', 'task': 'lift', 'cameras': list(VIEWS),
                              'image_width': 64, 'image_height': 64, 'seed': 0},
                 'camera_node': {'cameras': list(VIEWS), 'image_width': 32, 'image_height': 32,
                                 'publish_points': False},
                 'affordance_node': {'backend': 'scripted', 'republish_period': 0.2}}
    probe = Probe(ros_context, None)
    try:
        with GraphRunner('sim', overrides, ros_context) as runner:
            node = runner.nodes['affordance_node']
            reset = probe.node.create_client(Trigger, topics.SIM_RESET)
            step = probe.node.create_client(Trigger, topics.SIM_STEP)
            query = probe.node.create_client(Trigger, topics.AFFORDANCE_QUERY)
            assert probe.spin_until(lambda: step.service_is_ready() and reset.service_is_ready())
            assert probe.spin_until(lambda: node.reward_pub.get_subscription_count() > 0)
            future = reset.call_async(Trigger.Request())  # an episode this probe sees whole
            assert probe.spin_until(future.done) and future.result().success
            assert probe.spin_until(lambda: any(len(k.poses) == 4
                                                for k in probe.got['keypoints']))
            assert probe.spin_until(lambda: probe.query_status() is not None)
            status = probe.query_status()
            assert status.level == DiagnosticStatus.OK and status.message == 'dense: 4 waypoints'
            markers = [m for a in probe.got['markers'] for m in a.markers]
            path = [m for m in markers if m.type == Marker.LINE_STRIP]
            assert path and len(path[-1].points) == 4 and path[-1].header.frame_id == 'world'
            assert {m.text for m in markers if m.type == Marker.TEXT_VIEW_FACING} == {
                'pre_contact', 'grasp', 'post_contact', 'target'}
            twist = probe.node.create_publisher(TwistStamped, topics.ARM_DELTA_TWIST,
                                                topics.RELIABLE_QOS)
            assert probe.spin_until(lambda: twist.get_subscription_count() > 0)
            sim = runner.nodes['sim_node'].sim
            for _ in range(3):  # move the TCP 2 cm a step towards the first waypoint
                count = len(probe.got['dense'])
                position = sim.robot_state().ee_position
                heading = node.core.plan.waypoints[0] - position
                velocity = 0.2 * heading / np.linalg.norm(heading)
                msg = TwistStamped()
                msg.header.frame_id = topics.WORLD_FRAME
                msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = velocity
                twist.publish(msg)
                assert twist.wait_for_all_acked(Duration(seconds=5.0))
                future = step.call_async(Trigger.Request())
                assert probe.spin_until(future.done) and future.result().success
                assert probe.spin_until(lambda: len(probe.got['dense']) > count)
            rewards = probe.got['dense'][-3:]
            assert 0.0 < rewards[0] < rewards[1] < rewards[2] < 0.5, rewards
            calls = node.core.query().backend.calls
            future = query.call_async(Trigger.Request())
            assert probe.spin_until(future.done) and future.result().success
            assert probe.spin_until(lambda: node.core.query().backend.calls > calls)
    finally:
        probe.close()


def test_a_model_folder_that_is_not_there_is_refused_at_start_up(ros_context):
    with pytest.raises(ValueError, match='model folder /no/such/model does not exist'):
        _node(ros_context, backend='qwen2_5_vl', model_path='/no/such/model')


@pytest.mark.parametrize('case, params, expect, level', [
    # A folder that exists but holds no model (a nonexistent one is refused at start-up).
    ('missing model', {'backend': 'qwen2_5_vl', 'model_path': str(Path(__file__).parent)},
     'cannot be opened', DiagnosticStatus.ERROR),
    ('reply off the image', {'backend': 'off_image'}, 'outside', DiagnosticStatus.WARN),
    ('NaN depth', {'backend': 'scripted'}, 'no reading', DiagnosticStatus.WARN),
    ('empty instruction', {'backend': 'scripted'}, 'instruction is empty',
     DiagnosticStatus.WARN),
    ('missing view', {'backend': 'scripted', 'views': ['front', 'side', 'wrist']},
     'missing wrist', DiagnosticStatus.WARN),
])
def test_bad_input_gives_a_diagnostic_and_the_sparse_reward_only(ros_context, scene, case,
                                                                 params, expect, level):
    """Whatever is wrong, the node says so, publishes no waypoints and pays sparse only."""
    frames, position, instruction = scene
    node = _node(ros_context, **params)
    probe = Probe(ros_context, node)
    try:
        assert probe.spin_until(lambda: node.reward_pub.get_subscription_count() > 0)
        probe.instruction.publish(String(data='' if case == 'empty instruction'
                                         else instruction))
        assert probe.spin_until(lambda: node.core.episode_id is not None)
        nan = np.full((64, 64), np.nan, np.float32) if case == 'NaN depth' else None
        for t in range(3 if case == 'missing view' else 1):
            probe.publish_views(frames, 10.0 + t, depth=nan)
        for t in range(3):
            probe.publish_step(position + (0.0, 0.0, 0.01 * t), 10.0 + t)
        assert probe.spin_until(lambda: len(probe.got['dense']) >= 3)
        statuses = probe.got['diags']
        assert probe.spin_until(lambda: any(expect in s.message for s in statuses)), [
            s.message for s in statuses]
        assert max(s.level for s in statuses if expect in s.message) == level
        assert probe.got['dense'][:3] == [0.0, 0.0, 0.0]
        probe.publish_step(position, 13.0, sparse=1.0)  # success still pays
        assert probe.spin_until(lambda: len(probe.got['dense']) >= 4)
        assert probe.got['dense'][3] == 1.0
        assert not [k for k in probe.got['keypoints'] if k.poses]
    finally:
        probe.close()
        node.destroy_node()


def test_query_service_refuses_without_views(ros_context):
    """Asking before any complete set of views arrived fails and says why."""
    node = _node(ros_context, backend='scripted')
    probe = Probe(ros_context, node)
    try:
        query = probe.node.create_client(Trigger, topics.AFFORDANCE_QUERY)
        assert probe.spin_until(query.service_is_ready)
        future = query.call_async(Trigger.Request())
        assert probe.spin_until(future.done)
        assert not future.result().success and 'no complete set' in future.result().message
    finally:
        probe.close()
        node.destroy_node()


def test_a_failed_requery_keeps_the_waypoints_that_work(ros_context, scene):
    """Asking again with unusable views says so and keeps the episode's dense reward."""
    frames, position, instruction = scene
    node = _node(ros_context, backend='scripted')
    probe = Probe(ros_context, node)
    try:
        assert probe.spin_until(lambda: node.reward_pub.get_subscription_count() > 0)
        probe.instruction.publish(String(data=instruction))
        assert probe.spin_until(lambda: node.core.episode_id is not None)
        probe.publish_views(frames, 10.0)
        probe.publish_step(position, 10.0)
        assert probe.spin_until(lambda: [k for k in probe.got['keypoints'] if k.poses])
        first = [k for k in probe.got['keypoints'] if k.poses][-1]
        probe.publish_views(frames, 11.0, depth=np.full((64, 64), np.nan, np.float32))
        query = probe.node.create_client(Trigger, topics.AFFORDANCE_QUERY)
        assert probe.spin_until(lambda: query.service_is_ready() and len(node._sets) >= 2)
        future = query.call_async(Trigger.Request())
        assert probe.spin_until(future.done) and future.result().success
        assert probe.spin_until(lambda: any('keeping the previous waypoints' in s.message
                                            for s in probe.got['diags']))
        assert node.core.plan.ok
        count = len(probe.got['keypoints'])
        assert probe.spin_until(lambda: len(probe.got['keypoints']) > count, 2.0)
        assert all(k.poses == first.poses for k in probe.got['keypoints'][count:])
    finally:
        probe.close()
        node.destroy_node()
