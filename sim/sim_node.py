"""
ROS 2 adapter of the tabletop simulator: it owns ``/clock`` and publishes what a robot would.

Commands arrive on standard topics (``/arm/target_pose``, ``/arm/delta_twist``,
``/gripper/command``); the ROS-free :class:`CommandBuffer` validates them and
turns them into one simulator action per control step. Bad or stale commands
never reach the arm: they are reported on ``/diagnostics`` and the arm holds
still. In ``lockstep`` mode ``/sim/step`` advances one control step; in
``realtime`` mode a wall-clock timer does.
"""

from dataclasses import dataclass, replace
import sys
import threading
from typing import Any, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, Float64, String
from std_srvs.srv import Trigger
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import run_node
from visual_rl_stack.ros.msg_conversions import pose_to_arrays, stamp_from_seconds
from visual_rl_stack.ros.node_params import declare_params, ParamSpec
from visual_rl_stack.ros.step_messages import observation_messages

from .config import BACKGROUNDS, default_cameras, RandomizationConfig, SimConfig, TASK_NAMES
from .robot import (MAX_GRIPPER_WIDTH, quat_conjugate, quat_from_rotvec, quat_multiply,
                    quat_to_euler, Workspace)
from .scene import StepResult, TabletopSim

CAMERA_NAMES = tuple(spec.name for spec in default_cameras())
MAX_SEED = 2**31 - 1

PARAMS = {
    'task': ParamSpec('lift', 'Task built at start-up and on /sim/reset.', choices=TASK_NAMES),
    'seed': ParamSpec(-1, 'Episode seed used by /sim/reset; -1 draws a fresh seed each reset.',
                      low=-1, high=MAX_SEED),
    'mode': ParamSpec('realtime', 'realtime: a wall-clock timer steps; lockstep: /sim/step does.',
                      choices=('realtime', 'lockstep'), read_only=True),
    'realtime_factor': ParamSpec(1.0, 'Simulated seconds per wall-clock second (realtime mode).',
                                 low=0.05, high=20.0, read_only=True),
    'control_hz': ParamSpec(10.0, 'Control steps per simulated second (/clock rate).',
                            low=1.0, high=100.0, read_only=True),
    'physics_hz': ParamSpec(240.0, 'Physics steps per simulated second (multiple of control_hz).',
                            low=60.0, high=2000.0, read_only=True),
    'action_mode': ParamSpec('delta', 'delta: commands move the arm at most a bounded step per '
                             'control period; absolute: targets go straight to the IK.',
                             choices=('delta', 'absolute'), read_only=True),
    'cameras': ParamSpec(list(CAMERA_NAMES), f'Camera views to publish, from {CAMERA_NAMES} '
                         "([''] publishes none: ROS cannot type an empty array).", read_only=True),
    'image_width': ParamSpec(128, 'Width of every camera image (pixels).', low=16, high=1280,
                             read_only=True),
    'image_height': ParamSpec(128, 'Height of every camera image (pixels).', low=16, high=960,
                              read_only=True),
    'camera_rate_hz': ParamSpec(0.0, 'Rate of each camera stream; 0 renders every control step.',
                                low=0.0, high=100.0, read_only=True),
    'randomize_colors': ParamSpec(False, 'Randomise object colours per episode.', read_only=True),
    'randomize_lighting': ParamSpec(False, 'Randomise the light per episode.', read_only=True),
    'camera_jitter': ParamSpec(False, 'Jitter camera poses per episode.', read_only=True),
    'background': ParamSpec('plain', 'Table background.', choices=BACKGROUNDS, read_only=True),
    'command_timeout': ParamSpec(0.5, 'Simulated seconds after which an arm target is stale and '
                                 'the arm holds still.', low=0.01, high=60.0),
    'gui': ParamSpec(False, 'Open the PyBullet GUI window.', read_only=True),
}

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def sim_config_from_params(values: dict[str, Any]) -> SimConfig:
    """
    Build the simulator configuration from the node's parameter values.

    Raises ValueError for unknown camera names or inconsistent rates.
    """
    names = [name for name in values['cameras'] if name]
    unknown = [name for name in names if name not in CAMERA_NAMES]
    if unknown:
        raise ValueError(f'cameras={list(values["cameras"])} must be a subset of '
                         f'{list(CAMERA_NAMES)}')
    rate = values['camera_rate_hz'] or None
    specs = {spec.name: spec for spec in default_cameras()}
    cameras = tuple(replace(specs[name], width=values['image_width'],
                            height=values['image_height'], rate_hz=rate)
                    for name in names)
    randomization = RandomizationConfig(
        object_colors=values['randomize_colors'], lighting=values['randomize_lighting'],
        camera_jitter=values['camera_jitter'], background=values['background'])
    return SimConfig(task=values['task'], control_hz=values['control_hz'],
                     physics_hz=values['physics_hz'], action_mode=values['action_mode'],
                     cameras=cameras, randomization=randomization, gui=values['gui'])


@dataclass(frozen=True)
class Issue:
    """A problem with a command: diagnostic level and what happened."""

    level: bytes
    message: str


@dataclass(frozen=True)
class ArmTarget:
    """A validated TCP target pose and when (simulated seconds) it arrived."""

    position: np.ndarray
    orientation: np.ndarray
    received: float


class CommandBuffer:
    """
    Latest arm and gripper commands, validated, with a stale-command watchdog.

    ROS-free: the node feeds it plain arrays. An arm target stays active for
    ``timeout`` simulated seconds; a twist is used for one control step. Any
    invalid arm command drops the active one, so the arm holds still.
    """

    def __init__(self, workspace: Workspace, control_hz: float, max_step: float,
                 max_turn: float, timeout: float, frame_id: str = topics.WORLD_FRAME):
        """Remember the limits commands are checked against."""
        self.workspace = workspace
        self.control_hz = control_hz
        self.max_step = max_step
        self.max_turn = max_turn
        self.timeout = timeout
        self.frame_id = frame_id
        self.issues: list[Issue] = []
        self.clear()

    def clear(self) -> None:
        """Forget every command and issue (new episode); the gripper opens."""
        self.target: Optional[ArmTarget] = None
        self.twist: Optional[tuple[np.ndarray, np.ndarray]] = None
        self.gripper_fraction = 1.0
        self.issues.clear()

    def report(self, level: bytes, message: str) -> None:
        """Record an issue for the next diagnostics message."""
        self.issues.append(Issue(level, message))

    def take_issues(self) -> list[Issue]:
        """Return and forget the issues recorded since the last call."""
        issues, self.issues = self.issues, []
        return issues

    def _reject_arm(self, what: str, frame_id: str, *vectors: np.ndarray) -> bool:
        """Report and drop the arm command if its frame or values are invalid."""
        reason = None
        if frame_id != self.frame_id:
            reason = f'frame_id {frame_id!r} is not {self.frame_id!r}'
        elif not all(np.all(np.isfinite(v)) for v in vectors):
            reason = 'it contains NaN or inf'
        if reason is None:
            return False
        self.target, self.twist = None, None
        self.report(ERROR, f'{what} ignored: {reason}; holding still')
        return True

    def set_target(self, position: np.ndarray, orientation: np.ndarray, frame_id: str,
                   now: float) -> None:
        """Accept an absolute TCP target, clamped into the workspace."""
        if self._reject_arm('target pose', frame_id, position, orientation):
            return
        norm = float(np.linalg.norm(orientation))
        if norm < 1e-6:
            self.target, self.twist = None, None
            self.report(ERROR, 'target pose ignored: zero quaternion; holding still')
            return
        clamped, was_clamped = self.workspace.clamp(position)
        if was_clamped:
            self.report(WARN, f'target {np.round(position, 3).tolist()} outside the workspace '
                              f'{self.workspace}; clamped to {np.round(clamped, 3).tolist()}')
        self.target = ArmTarget(clamped, orientation / norm, now)
        self.twist = None

    def set_twist(self, linear: np.ndarray, angular: np.ndarray, frame_id: str) -> None:
        """Accept a velocity (m/s, rad/s, world frame) to apply for one control period."""
        if self._reject_arm('twist', frame_id, linear, angular):
            return
        step, turn = linear / self.control_hz, angular / self.control_hz
        # Per-axis limits, as the simulator's own delta actions have (an action box), so a
        # policy acts the same through ROS as in process; the sim clips, this node reports.
        tolerance = 1e-9
        if (np.abs(step).max() > self.max_step + tolerance
                or np.abs(turn).max() > self.max_turn + tolerance):
            limits = (self.max_step * self.control_hz, self.max_turn * self.control_hz)
            self.report(WARN, 'twist above the per-axis speed limits (%.2f m/s, %.2f rad/s); '
                        'clipped' % limits)
            step = np.clip(step, -self.max_step, self.max_step)
            turn = np.clip(turn, -self.max_turn, self.max_turn)
        self.twist = (step, turn)
        self.target = None

    def set_gripper(self, width: float) -> None:
        """Accept a finger opening width in metres (0 closed .. MAX_GRIPPER_WIDTH open)."""
        if not np.isfinite(width):
            self.report(ERROR, f'gripper width {width} ignored: not finite')
            return
        clipped = float(np.clip(width, 0.0, MAX_GRIPPER_WIDTH))
        if clipped != width:
            self.report(WARN, f'gripper width {width} outside [0, {MAX_GRIPPER_WIDTH}] m; '
                              f'clamped to {clipped}')
        self.gripper_fraction = clipped / MAX_GRIPPER_WIDTH

    def goal(self, reference: tuple[np.ndarray, np.ndarray], now: float
             ) -> tuple[np.ndarray, np.ndarray]:
        """
        Return the TCP pose to command this step; ``reference`` is the pose held still.

        Consumes the twist; drops a target older than the timeout.
        """
        position, orientation = reference
        if self.twist is not None:
            step, turn = self.twist
            self.twist = None
            return position + step, quat_multiply(quat_from_rotvec(turn), orientation)
        if self.target is not None and now - self.target.received > self.timeout:
            self.report(WARN, f'arm target is {now - self.target.received:.2f} s old (timeout '
                              f'{self.timeout} s); dropped, holding still')
            self.target = None
        if self.target is not None:
            return self.target.position, self.target.orientation
        return position, orientation


def pose_to_action(position: np.ndarray, orientation: np.ndarray, gripper_fraction: float,
                   reference: tuple[np.ndarray, np.ndarray], action_mode: str) -> np.ndarray:
    """Express a TCP goal as a simulator action in ``action_mode`` (see ``sim/scene.py``)."""
    if action_mode == 'absolute':
        return np.concatenate([position, orientation, [gripper_fraction]])
    ref_position, ref_orientation = reference
    turn = quat_multiply(orientation, quat_conjugate(ref_orientation))
    return np.concatenate([position - ref_position, quat_to_euler(turn), [gripper_fraction]])


class SimNode(Node):
    """Publishes the simulator's clock, robot state, cameras and task; executes commands."""

    def __init__(self, **kwargs: Any):
        """
        Declare parameters, build the simulator, start the first episode.

        ``kwargs`` go to ``rclpy.node.Node`` (context, parameter_overrides, cli_args).
        Raises ValueError for invalid parameters.
        """
        super().__init__('sim_node', **kwargs)
        self.values = declare_params(self, PARAMS, on_change=self._check_change)
        self.sim = TabletopSim(sim_config_from_params(self.values))
        cfg = self.sim.config
        self.control_period = 1.0 / cfg.control_hz
        self.commands = CommandBuffer(self.sim.workspace, cfg.control_hz, self.sim.max_delta,
                                      self.sim.max_rot_delta, self.values['command_timeout'])
        self.time_base = 0.0
        self.episode = 0
        self.seed = -1
        self.last_result: Optional[StepResult] = None
        self._lock = threading.Lock()
        self._closed = False
        self._create_interfaces([spec.name for spec in cfg.cameras])
        self._start_episode()
        if self.values['mode'] == 'realtime':
            period = self.control_period / self.values['realtime_factor']
            self.create_timer(period, self._advance, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f'{self.values["mode"]} simulator: task {cfg.task}, cameras '
            f'{[c.name for c in cfg.cameras]} at {self.values["image_width"]}x'
            f'{self.values["image_height"]}, {cfg.control_hz:g} Hz control'
            + ('; waiting for /sim/step: time advances one control step per call (`vrl call '
               'step --count N`, `ros2 service call /sim/step std_srvs/srv/Trigger`, or a '
               'lockstep driver such as `vrl eval --via-ros`)'
               if self.values['mode'] == 'lockstep' else ''))

    def _create_interfaces(self, cameras: list[str]) -> None:
        """Create publishers, subscriptions and services."""
        reliable, sensor = topics.RELIABLE_QOS, topics.SENSOR_QOS
        pub = self.create_publisher
        self.instruction_pub = pub(String, topics.TASK_INSTRUCTION, topics.LATCHED_QOS)
        self.diag_pub = pub(DiagnosticArray, topics.DIAGNOSTICS, reliable)
        #: topic -> publisher of everything step_messages.observation_messages yields.
        self.step_pubs = {
            topics.CLOCK: pub(ClockMsg, topics.CLOCK, reliable),
            topics.JOINT_STATES: pub(JointState, topics.JOINT_STATES, reliable),
            topics.EE_POSE: pub(PoseStamped, topics.EE_POSE, reliable),
            topics.TASK_SUCCESS: pub(Bool, topics.TASK_SUCCESS, reliable),
            topics.TASK_REWARD: pub(Float32, topics.TASK_REWARD, reliable),
            topics.TASK_STATE: pub(Float32MultiArray, topics.TASK_STATE, reliable),
        }
        for name in cameras:
            self.step_pubs.update({
                topics.color_topic(name): pub(Image, topics.color_topic(name), sensor),
                topics.camera_info_topic(name): pub(CameraInfo, topics.camera_info_topic(name),
                                                    sensor),
                topics.depth_topic(name): pub(Image, topics.depth_topic(name), sensor),
                topics.camera_pose_topic(name): pub(PoseStamped, topics.camera_pose_topic(name),
                                                    reliable)})
        self.create_subscription(PoseStamped, topics.ARM_TARGET_POSE, self._on_target, reliable)
        self.create_subscription(TwistStamped, topics.ARM_DELTA_TWIST, self._on_twist, reliable)
        self.create_subscription(Float64, topics.GRIPPER_COMMAND, self._on_gripper, reliable)
        self.create_service(Trigger, topics.SIM_RESET, self._on_reset)
        self.create_service(Trigger, topics.SIM_STEP, self._on_step)

    @property
    def now(self) -> float:
        """Return the node's simulated time: monotonic across episodes."""
        return self.time_base + self.sim.sim_time

    def _check_change(self, changed: dict[str, Any]) -> Optional[str]:
        """Apply run-time parameter changes (task and seed take effect on /sim/reset)."""
        if 'command_timeout' in changed:
            self.commands.timeout = changed['command_timeout']
        return None

    def _on_target(self, msg: PoseStamped) -> None:
        """Store an absolute TCP target."""
        position, orientation = pose_to_arrays(msg.pose)
        self.commands.set_target(position, orientation, msg.header.frame_id, self.now)
        self._log_issues()

    def _on_twist(self, msg: TwistStamped) -> None:
        """Store a velocity command for the next control step."""
        t = msg.twist
        self.commands.set_twist(np.array([t.linear.x, t.linear.y, t.linear.z]),
                                np.array([t.angular.x, t.angular.y, t.angular.z]),
                                msg.header.frame_id)
        self._log_issues()

    def _on_gripper(self, msg: Float64) -> None:
        """Store the finger opening width."""
        self.commands.set_gripper(msg.data)
        self._log_issues()

    def _log_issues(self) -> None:
        """Log the latest command issue (throttled); they are published with the next step."""
        if self.commands.issues:
            self.get_logger().warning(self.commands.issues[-1].message,
                                      throttle_duration_sec=1.0)

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        """Start a new episode with the current ``task`` and ``seed`` parameters."""
        try:
            with self._lock:
                self._start_episode()
        except Exception as error:  # noqa: BLE001 - any failure is reported to the caller
            self.get_logger().error(f'reset failed: {error}')
            response.success, response.message = False, f'reset failed: {error}'
            return response
        response.success = True
        response.message = (f'episode {self.episode}: task {self.sim.task.name}, '
                            f'seed {self.seed}: {self.sim.instruction}')
        return response

    def _on_step(self, _request: Trigger.Request, response: Trigger.Response
                 ) -> Trigger.Response:
        """Advance one control step (lockstep mode only) and publish before answering."""
        if self.values['mode'] != 'lockstep':
            response.success = False
            response.message = ('sim_node runs in realtime mode, where a timer steps the '
                                'simulator; start it with mode:=lockstep to use /sim/step')
            return response
        self._advance()
        response.success = True
        response.message = f'step {self.sim.step_count} t={self.now:.3f}'
        return response

    def _start_episode(self) -> None:
        """Reset the simulator from the parameters and publish the first observation."""
        task = self.get_parameter('task').value
        seed = self.get_parameter('seed').value
        if self.episode:
            self.time_base = self.now + self.control_period
        self.sim.reset(seed=None if seed < 0 else seed, task=task)
        self.seed = seed
        self.episode += 1
        self.commands.clear()
        self.last_result = None
        self.instruction_pub.publish(String(data=self.sim.instruction))
        self._publish()

    def _advance(self) -> None:
        """Step once unless the node is being destroyed (executors may still run a callback)."""
        with self._lock:
            if not self._closed:
                self._step()

    def _step(self) -> None:
        """Turn the buffered commands into one action, step the simulator, publish."""
        reference = self.sim.delta_reference()
        position, orientation = self.commands.goal(reference, self.now)
        action = pose_to_action(position, orientation, self.commands.gripper_fraction,
                                reference, self.sim.config.action_mode)
        try:
            self.last_result = self.sim.step(action)
        except ValueError as error:
            self.commands.report(ERROR, f'action refused by the simulator ({error}); holding')
            self.sim.advance()
            self.last_result = None
        if self.last_result is not None and self.last_result.info.get('clamped'):
            self.commands.report(WARN, 'arm target clamped into the workspace')
        self._publish()

    def _publish(self) -> None:
        """Publish every output of the current step, all with one stamp."""
        stamp = stamp_from_seconds(self.now)
        success = False
        for topic, msg in observation_messages(self.sim, stamp):
            self.step_pubs[topic].publish(msg)
            if topic == topics.TASK_SUCCESS:
                success = msg.data
        self._publish_diagnostics(stamp, success)

    def _publish_diagnostics(self, stamp: Any, success: bool) -> None:
        """Publish the command issues since the last step (OK when there were none)."""
        issues = self.commands.take_issues()
        level = max((i.level for i in issues), default=OK)
        message = '; '.join(i.message for i in issues) or 'commands OK'
        result = self.last_result
        values = {'episode': self.episode, 'seed': self.seed, 'task': self.sim.task.name,
                  'step': self.sim.step_count, 'success': success,
                  'truncated': bool(result and result.truncated)}
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: commands', hardware_id='pybullet',
            message=message, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = stamp
        self.diag_pub.publish(msg)

    def destroy_node(self) -> None:
        """Wait for a step in progress, disconnect the simulator, then destroy the node."""
        with self._lock:
            self._closed = True
            self.sim.close()
        super().destroy_node()


def main(args: Optional[list[str]] = None) -> int:
    """Run the sim node until Ctrl-C; exit 1 with a message on invalid parameters."""
    # Single-threaded: ready command subscriptions are handled before a /sim/step request.
    return run_node(SimNode, args)


if __name__ == '__main__':
    sys.exit(main())
