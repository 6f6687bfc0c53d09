"""
Drive a lockstep simulator graph through its ROS interface, one control step at a time.

This is what an external controller sees: it reads only topics, sends only
the standard command topics and advances time with the ``/sim/step`` service.
The demo, the end-to-end tests and ROS-side evaluations use it, so anything
they report went through DDS exactly as on a robot.
"""

from dataclasses import dataclass, field
import time
from typing import Any, Callable, Optional

from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, Float64, String
from std_srvs.srv import Trigger
from visual_rl_stack.sim.robot import MAX_GRIPPER_WIDTH, RobotState

from . import topics
from .msg_conversions import labelled_array_to_dict, pose_to_arrays, stamp_to_seconds
from .step_messages import command_messages


@dataclass
class Observation:
    """Everything the graph published for one control step."""

    stamp: float
    robot: RobotState
    task_state: dict[str, np.ndarray]
    success: bool
    reward: float
    multiview: Optional[Image] = None
    extras: dict[str, Any] = field(default_factory=dict)


class LockstepClient(Node):
    """A node that resets, commands and steps a lockstep ``sim_node``."""

    def __init__(self, sim_node_name: str = 'sim_node', want_multiview: bool = False,
                 control_hz: float = 10.0, timeout: float = 20.0, **kwargs: Any):
        """Create publishers, subscriptions and service clients on ``kwargs['context']``."""
        super().__init__('lockstep_client', **kwargs)
        self.control_hz = control_hz
        self.timeout = timeout
        self.want_multiview = want_multiview
        self._latest: dict[str, Any] = {}
        self.instruction = ''
        qos = topics.RELIABLE_QOS
        for topic, msg_type in ((topics.JOINT_STATES, JointState), (topics.EE_POSE, PoseStamped),
                                (topics.TASK_STATE, Float32MultiArray),
                                (topics.TASK_SUCCESS, Bool), (topics.TASK_REWARD, Float32)):
            self.create_subscription(msg_type, topic, self._keeper(topic), qos)
        self.create_subscription(String, topics.TASK_INSTRUCTION, self._on_instruction,
                                 topics.LATCHED_QOS)
        if want_multiview:
            self.create_subscription(Image, topics.MULTIVIEW_IMAGE,
                                     self._keeper(topics.MULTIVIEW_IMAGE), topics.SENSOR_QOS)
        self.command_pubs = {
            topics.ARM_DELTA_TWIST: self.create_publisher(TwistStamped, topics.ARM_DELTA_TWIST,
                                                          qos),
            topics.ARM_TARGET_POSE: self.create_publisher(PoseStamped, topics.ARM_TARGET_POSE,
                                                          qos),
            topics.GRIPPER_COMMAND: self.create_publisher(Float64, topics.GRIPPER_COMMAND, qos)}
        self.reset_client = self.create_client(Trigger, topics.SIM_RESET)
        self.step_client = self.create_client(Trigger, topics.SIM_STEP)
        self.param_client = self.create_client(
            SetParametersAtomically, f'/{sim_node_name}/set_parameters_atomically')
        self.executor_ = SingleThreadedExecutor(context=self.context)
        self.executor_.add_node(self)

    def _keeper(self, topic: str) -> Callable[[Any], None]:
        def keep(msg: Any) -> None:
            self._latest[topic] = msg
        return keep

    def _on_instruction(self, msg: String) -> None:
        self.instruction = msg.data

    def _spin_until(self, done: Callable[[], bool], what: str,
                    timeout: Optional[float] = None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f'lockstep client: timed out waiting for {what}')
            self.executor_.spin_once(timeout_sec=0.01)

    def _call(self, client: Any, request: Any, what: str) -> Any:
        self._spin_until(client.service_is_ready, f'the {what} service')
        future = client.call_async(request)
        self._spin_until(future.done, f'the {what} response')
        return future.result()

    def _stamped(self, topic: str) -> Optional[float]:
        msg = self._latest.get(topic)
        return None if msg is None else stamp_to_seconds(msg.header.stamp)

    def _wait_for_step(self, after: Optional[float]) -> Observation:
        """Wait until robot state newer than ``after`` and the matching task topics arrived."""
        def fresh() -> bool:
            stamp = self._stamped(topics.JOINT_STATES)
            if stamp is None or (after is not None and stamp <= after):
                return False
            if self._stamped(topics.EE_POSE) != stamp:
                return False
            if self.want_multiview and self._stamped(topics.MULTIVIEW_IMAGE) != stamp:
                return False
            return all(t in self._latest for t in (topics.TASK_STATE, topics.TASK_SUCCESS))
        self._spin_until(fresh, 'the next observation')
        # Task topics carry no stamp; they are published before the step's response.
        return self._observation()

    def _observation(self) -> Observation:
        joints: JointState = self._latest[topics.JOINT_STATES]
        position, orientation = pose_to_arrays(self._latest[topics.EE_POSE].pose)
        finger = [p for n, p in zip(joints.name, joints.position) if 'finger' in n]
        robot = RobotState(tuple(joints.name), np.asarray(joints.position),
                           np.asarray(joints.velocity), position, orientation,
                           float(min(sum(finger), MAX_GRIPPER_WIDTH)))
        reward = self._latest.get(topics.TASK_REWARD)
        return Observation(stamp=stamp_to_seconds(joints.header.stamp), robot=robot,
                           task_state=labelled_array_to_dict(self._latest[topics.TASK_STATE]),
                           success=bool(self._latest[topics.TASK_SUCCESS].data),
                           reward=float(reward.data) if reward else 0.0,
                           multiview=self._latest.get(topics.MULTIVIEW_IMAGE))

    def reset(self, task: Optional[str] = None, seed: Optional[int] = None) -> Observation:
        """Set ``task``/``seed`` on the sim node atomically, reset it, return the first obs."""
        params = []
        if task is not None:
            params.append(Parameter(name='task', value=ParameterValue(
                type=ParameterType.PARAMETER_STRING, string_value=task)))
        if seed is not None:
            params.append(Parameter(name='seed', value=ParameterValue(
                type=ParameterType.PARAMETER_INTEGER, integer_value=int(seed))))
        if params:
            result = self._call(self.param_client,
                                SetParametersAtomically.Request(parameters=params), 'parameter')
            if not result.result.successful:
                raise ValueError(f'sim_node refused task={task} seed={seed}: '
                                 f'{result.result.reason}')
        for topic in (topics.TASK_STATE, topics.JOINT_STATES):
            self._latest.pop(topic, None)
        response = self._call(self.reset_client, Trigger.Request(), 'reset')
        if not response.success:
            raise RuntimeError(f'sim_node reset failed: {response.message}')
        # An acknowledged command is only delivered if the simulator's subscription was
        # already discovered: with none matched, wait_for_all_acked succeeds vacuously.
        self._spin_until(lambda: all(p.get_subscription_count() > 0
                                     for p in self.command_publishers()),
                         'the simulator to subscribe to the command topics')
        return self._wait_for_step(None)

    def command_publishers(self) -> list[Any]:
        """Return the publishers whose commands drive the simulator."""
        return list(self.command_pubs.values())

    def send(self, action: np.ndarray, action_mode: str) -> None:
        """
        Publish ``action`` (sim action layout) as the standard command messages.

        Both publishers are reliable; waiting until every subscriber has
        acknowledged them means the sim node holds the commands before the
        ``/sim/step`` request that uses them is even sent.
        """
        stamp = self._latest[topics.JOINT_STATES].header.stamp
        sent = []
        for topic, msg in command_messages(np.asarray(action, dtype=float), action_mode,
                                           self.control_hz, stamp):
            self.command_pubs[topic].publish(msg)
            sent.append(self.command_pubs[topic])
        ack_timeout = Duration(seconds=self.timeout)
        for publisher in sent:
            if not publisher.wait_for_all_acked(ack_timeout):
                raise TimeoutError(f'lockstep client: {publisher.topic_name} not acknowledged')

    def step(self, action: np.ndarray, action_mode: str) -> Observation:
        """Send ``action``, advance the simulator one control step and return the new obs."""
        self.send(action, action_mode)
        return self.advance()

    def advance(self) -> Observation:
        """Call ``/sim/step`` with the commands already delivered; return the new observation."""
        before = self._stamped(topics.JOINT_STATES)
        response = self._call(self.step_client, Trigger.Request(), 'step')
        if not response.success:
            raise RuntimeError(f'sim_node step failed: {response.message}')
        return self._wait_for_step(before)
