"""
World-model node: the plan's current stage, its progress, the predicted reward, keyframes.

A thin ROS 2 adapter over :class:`.monitor.WorldModelMonitor`. Every
``/joint_states`` message is one step: it is judged once the ``/ee_pose`` of
its stamp, a ``/task/state`` received after it (privileged source; the
simulator publishes it after the joints) and the
``/perception/multiview/image`` of its stamp (split into the world model's
views, when there is a model, once the views have been seen stamped like the
joints) have arrived, or, when the next step starts first, with the latest of
each; and
``/world_model/stage`` (String ``'<index> <name>'``, index from 1, ``'<n+1>
done'`` past the last stage), ``/world_model/progress`` (Float32, 0-1 over
the plan), ``/world_model/reward`` (Float32, the staged progress the world
model predicts from the views) and ``/world_model/keyframe`` (Bool) follow
for that step. ``/task/instruction`` (latched, one per episode) starts an
episode: the plan is made on the next step, grounded in the task's objects
(the task is told by the fields of ``/task/state``).
An output that cannot be trusted this step (NaN joints, an instruction the
planner cannot ground, missing views or object state) is not published, and
``/diagnostics`` says why; every ``diagnostic_period`` it also reports the
update latency (median, p99).
"""

from collections import deque
import sys
from typing import Any, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, Header, String
from visual_rl_stack.core.devices import limit_callback_torch
from visual_rl_stack.core.image_buffers import ConversionError, image_to_array
from visual_rl_stack.perception.preprocess import split_tiled
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import run_node
from visual_rl_stack.ros.msg_conversions import labelled_array_to_dict, pose_to_arrays
from visual_rl_stack.ros.node_params import configure_or_destroy, declare_params, ParamSpec

from .mae.model import load_mae
from .monitor import ERROR, MonitorUpdate, OK, SOURCES, WARN, WorldModelMonitor
from .planning.planners import open_planner, PLANNERS

NODE_NAME = 'world_model_node'
LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}
#: Update latencies kept for the median and p99 the diagnostics report.
LATENCY_WINDOW = 1000

PARAMS = {
    'world_model': ParamSpec('', 'World-model run folder (vrl train-world-model or vrl '
                             'train-horizon) whose reward head predicts /world_model/reward; '
                             'empty: no predicted reward.', read_only=True),
    'state_source': ParamSpec('privileged', 'Where stage and progress come from: the '
                              "simulator's object state, or the world model's predicted "
                              'progress (a real arm).', choices=SOURCES, read_only=True),
    'planner': ParamSpec('rules', 'Planner backend that turns the instruction into stages.',
                         choices=PLANNERS, read_only=True),
    'planner_model': ParamSpec('', 'Local model folder of a planner with weights (causal-lm).',
                               read_only=True),
    'control_hz': ParamSpec(10.0, 'Control rate (Hz) of /joint_states, for joint velocities.',
                            1.0, 100.0, read_only=True),
    'diagnostic_period': ParamSpec(1.0, 'Seconds (wall clock) between latency diagnostics.',
                                   0.05, 60.0, read_only=True),
    'torch_threads': ParamSpec(1, 'Threads torch uses for the world model and planner; more '
                               'than one lets this node take the cores the rest of the graph '
                               'needs.', 1, 256, read_only=True),
}


class WorldModelNode(Node):
    """ROS adapter of :class:`WorldModelMonitor`; ``kwargs`` go to ``rclpy.node.Node``."""

    def __init__(self, **kwargs: Any) -> None:
        """Configure the node; invalid parameters raise ValueError (nothing is left running)."""
        super().__init__(NODE_NAME, **kwargs)
        configure_or_destroy(self, self._configure)

    def _configure(self) -> None:
        """Read the parameters, open the world model and planner, create the interfaces."""
        values = declare_params(self, PARAMS)
        self._torch_threads = values['torch_threads']
        mae = load_mae(values['world_model']) if values['world_model'] else None
        planner = open_planner(values['planner'], values['planner_model'] or None)
        self.core = WorldModelMonitor(planner, values['state_source'], mae, values['control_hz'])
        self._pose: Optional[np.ndarray] = None
        self._pose_stamp: Optional[int] = None
        self._task_state: Optional[dict[str, np.ndarray]] = None
        self._task_fresh = False
        self._images: Optional[dict[str, np.ndarray]] = None
        self._image_stamp: Optional[int] = None
        self._pending: Optional[JointState] = None
        #: Whether the tiled views are stamped like the joints (then a step waits for its own).
        self._views_synced = False
        self._joint_stamps: deque = deque(maxlen=10)
        self._latencies: deque = deque(maxlen=LATENCY_WINDOW)
        self._last: Optional[tuple[int, str]] = None
        reliable, latched = topics.RELIABLE_QOS, topics.LATCHED_QOS
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, reliable)
        self.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, reliable)
        self.create_subscription(Float32MultiArray, topics.TASK_STATE, self._on_task_state,
                                 reliable)
        self.create_subscription(String, topics.TASK_INSTRUCTION, self._on_instruction, latched)
        if mae is not None:
            self.create_subscription(Image, topics.MULTIVIEW_IMAGE, self._on_image,
                                     topics.SENSOR_QOS)
        self.stage_pub = self.create_publisher(String, topics.WORLD_MODEL_STAGE, reliable)
        self.progress_pub = self.create_publisher(Float32, topics.WORLD_MODEL_PROGRESS, reliable)
        self.reward_pub = self.create_publisher(Float32, topics.WORLD_MODEL_REWARD, reliable)
        self.keyframe_pub = self.create_publisher(Bool, topics.WORLD_MODEL_KEYFRAME, reliable)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, reliable)
        self.create_timer(values['diagnostic_period'], self._on_timer,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f'stages from the {values["state_source"]} state, world model '
                               f'{values["world_model"] or "none"}')

    # Inputs -------------------------------------------------------------------------------

    def _on_instruction(self, msg: String) -> None:
        """Start an episode; it is planned on its first step."""
        self.core.new_episode(msg.data)

    def _on_pose(self, msg: PoseStamped) -> None:
        """Keep the latest TCP position."""
        self._pose = pose_to_arrays(msg.pose)[0]
        self._pose_stamp = _nanoseconds(msg.header.stamp)
        self._try_step()

    def _on_task_state(self, msg: Float32MultiArray) -> None:
        """Keep the latest privileged task state."""
        try:
            self._task_state = labelled_array_to_dict(msg)
        except ConversionError as error:
            self._task_state = None
            self._report(DiagnosticStatus.ERROR, f'bad /task/state: {error}')
        self._task_fresh = True
        self._try_step()

    def _on_image(self, msg: Image) -> None:
        """Keep the latest views, split from the tiled image."""
        try:
            self._images = split_tiled(image_to_array(msg), self.core.views,
                                       (self.core.image_size,) * 2)
        except (ConversionError, ValueError) as error:
            self._images = None
            self._report(DiagnosticStatus.WARN, f'multi-view image refused: {error}')
        self._image_stamp = _nanoseconds(msg.header.stamp)
        self._views_synced = self._views_synced or self._image_stamp in self._joint_stamps
        self._try_step()

    def _on_joints(self, msg: JointState) -> None:
        """Start a step; one still incomplete is judged now with the latest inputs."""
        if self._pending is not None:
            self._judge(self._pending)
        self._pending = msg
        self._joint_stamps.append(_nanoseconds(msg.header.stamp))
        self._try_step()

    def _try_step(self) -> None:
        """Judge the pending step once its pose, task state and views have arrived."""
        if self._pending is None:
            return
        stamp = _nanoseconds(self._pending.header.stamp)
        if self._pose_stamp != stamp:
            return
        if self.core.source == 'privileged' and not self._task_fresh:
            return
        if self.core.views and self._views_synced and self._image_stamp != stamp:
            return
        self._judge(self._pending)

    def _judge(self, msg: JointState) -> None:
        """Judge one step and publish what can be trusted of it."""
        self._pending, self._task_fresh = None, False
        if self._pose is None:
            self._report(DiagnosticStatus.WARN, 'waiting for /ee_pose')
            return
        fingers = [p for n, p in zip(msg.name, msg.position) if 'finger' in n]
        arm = [p for n, p in zip(msg.name, msg.position) if 'finger' not in n]
        limit_callback_torch(self._torch_threads)
        update = self.core.update(np.asarray(arm, float), float(sum(fingers)), self._pose,
                                  self._task_state, self._images)
        self._publish(update)

    # Outputs ------------------------------------------------------------------------------

    def _publish(self, update: MonitorUpdate) -> None:
        """Publish the trusted outputs of one step and a diagnostic when something changed."""
        self._latencies.append(update.seconds)
        if update.stage_label is not None:
            self.stage_pub.publish(String(data=update.stage_label))
        if update.progress is not None:
            self.progress_pub.publish(Float32(data=float(update.progress)))
        if update.reward is not None:
            self.reward_pub.publish(Float32(data=float(update.reward)))
        if update.keyframe is not None:
            self.keyframe_pub.publish(Bool(data=bool(update.keyframe)))
        if update.level != OK:
            self._report(LEVELS[update.level], update.message)
        elif self._last is not None and self._last[0] != DiagnosticStatus.OK:
            self._report(DiagnosticStatus.OK, update.message)

    def _report(self, level: int, message: str, values: Optional[dict] = None) -> None:
        """Publish a diagnostic (repeats of the last one only with new values)."""
        if values is None and self._last == (level, message):
            return
        self._last = (level, message)
        status = DiagnosticStatus(level=level, name=f'{NODE_NAME}: stages',
                                  message=message, hardware_id=NODE_NAME)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in (values or {}).items()]
        header = Header(stamp=self.get_clock().now().to_msg())
        self.diag_pub.publish(DiagnosticArray(header=header, status=[status]))

    def _on_timer(self) -> None:
        """Report the update latency (median, p99) over the latest steps."""
        if not self._latencies:
            return
        ms = np.asarray(self._latencies) * 1e3
        level, message = self._last or (DiagnosticStatus.OK, 'ok')
        self._report(level, message, {'updates': len(ms),
                                      'latency_median_ms': f'{np.median(ms):.3f}',
                                      'latency_p99_ms': f'{np.percentile(ms, 99):.3f}'})


def _nanoseconds(stamp: Any) -> int:
    """Return a message stamp as integer nanoseconds (exact, for matching stamps)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def main(args: Optional[list[str]] = None) -> int:
    """Run the world-model node until Ctrl-C; exit 1 with a message on invalid parameters."""
    return run_node(WorldModelNode, args)


if __name__ == '__main__':
    sys.exit(main())
