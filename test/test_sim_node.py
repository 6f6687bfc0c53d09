"""The sim node over real DDS: lockstep stepping, stamps, commands, resets, realtime mode."""

from typing import Any, Iterator

from conftest import spin_until
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger
from visual_rl_stack.core.image_buffers import image_to_array
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.msg_conversions import (labelled_array_to_dict, make_pose_stamped,
                                                 pose_to_arrays, stamp_to_seconds)
from visual_rl_stack.sim.robot import Workspace
from visual_rl_stack.sim.sim_node import CommandBuffer, ERROR, SimNode, WARN

SIZE = 64
LOCKSTEP = {'mode': 'lockstep', 'task': 'reach', 'seed': 3, 'cameras': ['front', 'wrist'],
            'image_width': SIZE, 'image_height': SIZE}


class Probe:
    """A test node keeping the latest message of each sim topic, plus service clients."""

    def __init__(self, context: Context, sim: SimNode):
        """Subscribe to the sim node's outputs and add both nodes to one executor."""
        self.node = Node('probe', context=context)
        self.latest: dict[str, Any] = {}
        reliable, sensor = topics.RELIABLE_QOS, topics.SENSOR_QOS
        subscriptions = [(Clock, topics.CLOCK, reliable), (JointState, topics.JOINT_STATES,
                                                           reliable),
                         (PoseStamped, topics.EE_POSE, reliable),
                         (DiagnosticArray, topics.DIAGNOSTICS, reliable),
                         (Float32MultiArray, topics.TASK_STATE, reliable),
                         (String, topics.TASK_INSTRUCTION, topics.LATCHED_QOS)]
        for camera in ('front', 'wrist'):
            subscriptions += [(Image, topics.color_topic(camera), sensor),
                              (Image, topics.depth_topic(camera), sensor),
                              (CameraInfo, topics.camera_info_topic(camera), sensor),
                              (PoseStamped, topics.camera_pose_topic(camera), reliable)]
        for msg_type, topic, qos in subscriptions:
            self.node.create_subscription(msg_type, topic, self._keeper(topic), qos)
        self.diagnostics: list[DiagnosticStatus] = []
        self.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS,
                                      lambda m: self.diagnostics.extend(m.status), reliable)
        self.target_pub = self.node.create_publisher(PoseStamped, topics.ARM_TARGET_POSE,
                                                     reliable)
        self.step_client = self.node.create_client(Trigger, topics.SIM_STEP)
        self.reset_client = self.node.create_client(Trigger, topics.SIM_RESET)
        self.param_client = self.node.create_client(
            SetParametersAtomically, '/sim_node/set_parameters_atomically')
        self.sim = sim
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(sim)
        self.executor.add_node(self.node)

    def _keeper(self, topic: str) -> Any:
        return lambda msg: self.latest.__setitem__(topic, msg)

    def spin(self, predicate: Any, timeout: float = 10.0) -> None:
        assert spin_until(self.executor, predicate, timeout), 'timed out'

    def call(self, client: Any, request: Any) -> Any:
        self.spin(client.service_is_ready)
        future = client.call_async(request)
        self.spin(future.done)
        return future.result()

    def step(self) -> Trigger.Response:
        """Call /sim/step and wait until the step's joint state arrived."""
        response = self.call(self.step_client, Trigger.Request())
        if response.success:
            self.spin(lambda: self.at_now(topics.JOINT_STATES))
        return response

    def at_now(self, topic: str) -> bool:
        """Return whether the latest message of ``topic`` is stamped with the node's time."""
        return abs(self.stamp(topic) - self.sim.now) < 1e-6

    def stamp(self, topic: str) -> float:
        msg = self.latest.get(topic)
        if msg is None:
            return -1.0
        return stamp_to_seconds(msg.clock if isinstance(msg, Clock) else msg.header.stamp)

    def ee_position(self) -> np.ndarray:
        return pose_to_arrays(self.latest[topics.EE_POSE].pose)[0]

    def set_params(self, **values: Any) -> Any:
        params = [ParameterMsg(name=k, value=Parameter(k, value=v).get_parameter_value())
                  for k, v in values.items()]
        return self.call(self.param_client,
                         SetParametersAtomically.Request(parameters=params)).result


def make_node(context: Context, **params: Any) -> SimNode:
    """Start a sim node with the given parameter overrides."""
    return SimNode(context=context,
                   parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


@pytest.fixture
def probe(ros_context: Context) -> Iterator[Probe]:
    """Yield a probe wired to a lockstep sim node with two small cameras."""
    sim = make_node(ros_context, **LOCKSTEP)
    probe = Probe(ros_context, sim)
    probe.spin(lambda: topics.JOINT_STATES in probe.latest or probe.step().success)
    yield probe
    probe.executor.shutdown()
    sim.destroy_node()


def test_step_advances_clock_and_publishes_one_stamped_observation(probe: Probe):
    before = probe.sim.now
    assert probe.step().success
    now = probe.sim.now
    assert now == pytest.approx(before + 0.1)
    camera_topics = [t(c) for c in ('front', 'wrist') for t in (
        topics.color_topic, topics.depth_topic, topics.camera_info_topic,
        topics.camera_pose_topic)]
    stamped = [topics.CLOCK, topics.JOINT_STATES, topics.EE_POSE] + camera_topics
    probe.spin(lambda: all(probe.at_now(t) for t in stamped))
    joints = probe.latest[topics.JOINT_STATES]
    assert len(joints.name) == len(joints.position) == len(joints.effort) == 9
    assert probe.latest[topics.EE_POSE].header.frame_id == topics.WORLD_FRAME
    for camera in ('front', 'wrist'):
        color = probe.latest[topics.color_topic(camera)]
        depth = probe.latest[topics.depth_topic(camera)]
        info = probe.latest[topics.camera_info_topic(camera)]
        assert (color.encoding, depth.encoding) == ('rgb8', '32FC1')
        assert image_to_array(color).shape == (SIZE, SIZE, 3)
        metres = image_to_array(depth)
        assert metres.shape == (SIZE, SIZE) and np.all(np.isfinite(metres))
        assert 0.01 < metres.min() and metres.max() < 3.0
        assert (info.width, info.height) == (SIZE, SIZE)
        assert color.header.frame_id == depth.header.frame_id == info.header.frame_id
        assert color.header.frame_id.endswith('_optical_frame')
        assert info.k[2] == pytest.approx((SIZE - 1) / 2)


def test_target_pose_moves_the_arm_toward_it(probe: Probe):
    start = probe.ee_position()
    target = start + np.array([0.0, 0.08, -0.06])
    orientation = pose_to_arrays(probe.latest[topics.EE_POSE].pose)[1]
    probe.target_pub.publish(make_pose_stamped(target, orientation, probe.latest[
        topics.JOINT_STATES].header.stamp, topics.WORLD_FRAME))
    probe.spin(lambda: probe.sim.commands.target is not None)
    for _ in range(4):
        assert probe.step().success
    assert np.linalg.norm(probe.ee_position() - target) < 0.5 * np.linalg.norm(start - target)


def test_nan_command_is_reported_and_the_arm_holds_still(probe: Probe):
    start = probe.ee_position()
    stamp = probe.latest[topics.JOINT_STATES].header.stamp
    probe.target_pub.publish(make_pose_stamped([np.nan, 0.0, 0.3], [1, 0, 0, 0], stamp,
                                               topics.WORLD_FRAME))
    probe.spin(lambda: bool(probe.sim.commands.issues))
    for _ in range(3):
        assert probe.step().success
    assert np.linalg.norm(probe.ee_position() - start) < 0.005
    probe.spin(lambda: any(s.level == ERROR for s in probe.diagnostics))
    error = next(s for s in probe.diagnostics if s.level == ERROR)
    assert 'NaN' in error.message and 'holding still' in error.message


def test_unknown_task_is_refused_with_the_known_ones(probe: Probe):
    result = probe.set_params(task='juggle', seed=1)
    assert not result.successful
    assert 'juggle' in result.reason and 'pick_place' in result.reason
    assert probe.sim.get_parameter('seed').value == 3


def test_reset_with_new_task_and_seed_is_reproducible(probe: Probe):
    probe.spin(lambda: topics.TASK_INSTRUCTION in probe.latest)
    first_instruction = probe.latest[topics.TASK_INSTRUCTION].data
    assert probe.set_params(task='push', seed=11).successful
    states = []
    for _ in range(2):
        before = probe.sim.now
        response = probe.call(probe.reset_client, Trigger.Request())
        assert response.success, response.message
        probe.spin(lambda: probe.stamp(topics.JOINT_STATES) > before
                   and probe.latest[topics.TASK_INSTRUCTION].data != first_instruction)
        probe.spin(lambda: probe.at_now(topics.JOINT_STATES))
        states.append(labelled_array_to_dict(probe.latest[topics.TASK_STATE]))
        assert probe.step().success
    assert probe.sim.sim.task.name == 'push'
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        np.testing.assert_allclose(states[0][key], states[1][key], atol=1e-6)


def test_realtime_mode_publishes_clock_and_refuses_step(ros_context: Context):
    sim = make_node(ros_context, mode='realtime', realtime_factor=5.0, cameras=[''])
    probe = Probe(ros_context, sim)
    try:
        response = probe.call(probe.step_client, Trigger.Request())
        assert not response.success and 'lockstep' in response.message
        probe.spin(lambda: probe.stamp(topics.CLOCK) >= 0.0)
        first = probe.stamp(topics.CLOCK)
        probe.spin(lambda: probe.stamp(topics.CLOCK) >= first + 0.3)
    finally:
        probe.executor.shutdown()
        sim.destroy_node()


def test_invalid_parameters_fail_start_up_with_a_reason(ros_context: Context):
    with pytest.raises(ValueError, match='cameras'):
        make_node(ros_context, cameras=['front', 'ceiling'])


# The command buffer without ROS.

def buffer() -> CommandBuffer:
    return CommandBuffer(Workspace(), control_hz=10.0, max_step=0.05, max_turn=0.2, timeout=0.5)


HOLD = (np.array([0.5, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0]))


def test_wrong_frame_is_rejected_and_drops_the_active_target():
    commands = buffer()
    commands.set_target(np.array([0.5, 0.1, 0.3]), HOLD[1], 'world', now=0.0)
    commands.set_target(np.array([0.5, 0.1, 0.3]), HOLD[1], 'camera', now=0.0)
    [issue] = commands.take_issues()
    assert issue.level == ERROR and "'camera'" in issue.message
    np.testing.assert_array_equal(commands.goal(HOLD, now=0.1)[0], HOLD[0])
    # The limits are per axis, like the simulator's action box: a diagonal move at the
    # limit on every axis passes unchanged, only the axis beyond it is clipped.
    commands.set_twist(np.array([0.5, -0.5, 0.9]), np.zeros(3), 'world')
    assert [i.level for i in commands.take_issues()] == [WARN]
    np.testing.assert_allclose(commands.twist[0], [0.05, -0.05, 0.05])
    commands.set_twist(np.array([0.5, -0.5, 0.5]), np.zeros(3), 'world')
    assert commands.take_issues() == []


def test_out_of_workspace_target_is_clamped_with_a_warning():
    commands = buffer()
    commands.set_target(np.array([2.0, 0.0, 0.3]), HOLD[1], 'world', now=0.0)
    [issue] = commands.take_issues()
    assert issue.level == WARN and 'clamped' in issue.message
    assert commands.goal(HOLD, now=0.1)[0][0] == pytest.approx(Workspace().hi[0])


def test_stale_target_is_dropped():
    commands = buffer()
    commands.set_target(np.array([0.6, 0.1, 0.3]), HOLD[1], 'world', now=0.0)
    assert commands.goal(HOLD, now=0.4)[0][0] == pytest.approx(0.6)
    np.testing.assert_array_equal(commands.goal(HOLD, now=0.6)[0], HOLD[0])
    assert 'old' in commands.take_issues()[0].message


def test_twist_is_used_for_one_step_and_speed_limited():
    commands = buffer()
    commands.set_twist(np.array([0.0, 0.0, -2.0]), np.zeros(3), 'world')
    assert commands.take_issues()[0].level == WARN
    assert commands.goal(HOLD, now=0.0)[0][2] == pytest.approx(0.3 - 0.05)
    np.testing.assert_array_equal(commands.goal(HOLD, now=0.1)[0], HOLD[0])


@pytest.mark.parametrize('width, fraction, level', [(0.04, 0.5, None), (0.2, 1.0, WARN),
                                                    (-1.0, 0.0, WARN), (np.inf, 1.0, ERROR)])
def test_gripper_width_is_clamped_or_refused(width: float, fraction: float, level: Any):
    commands = buffer()
    commands.set_gripper(width)
    assert commands.gripper_fraction == pytest.approx(fraction)
    assert [i.level for i in commands.take_issues()] == ([level] if level else [])
