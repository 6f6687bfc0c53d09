"""
Affordance node: KAGI keypoints at every episode start and a dense reward at every step.

A thin ROS 2 adapter over :class:`.episode_affordance.EpisodeAffordance`.
Inputs: per view ``<cam>`` in ``views`` the colour image, aligned depth,
CameraInfo and (unless static ``extrinsics.<cam>`` are configured) the optical
frame's pose; ``/task/instruction`` (latched, one message per episode: the
episode start); ``/ee_pose``; the sparse reward topic (``/task/reward``).
The episode's first complete set of views (stamped like the first
``/ee_pose`` after the instruction) is sent to the backend on a thread of the
node's own, so a slow model never stalls the graph;
``/affordance/query`` (std_srvs/Trigger) asks again, uncached, with the latest
views (an answer without waypoints then keeps the waypoints the episode has,
and the diagnostic says so). Outputs: ``/affordance/keypoints`` (PoseArray in ``world``, the
waypoints in :data:`.affordance.WAYPOINT_ORDER`) and ``/affordance/markers``
(labelled spheres and the waypoint path), latched and republished every
``republish_period``; ``/reward/dense`` (Float32) once per control step;
``/diagnostics`` with the query's outcome.

``/reward/dense`` carries KAGI's combined reward, so a learner can train on it
alone: the step's sparse reward when non-zero, else the dense progress term.
Without a plan (bad views, no instruction, a model that cannot be opened or
answers nonsense) it is the sparse reward alone, 0.0 until success, and the
diagnostic (WARN, or ERROR for a backend that cannot be opened or a
misconfigured camera) says why; the node never stops for bad input. A step
is an ``/ee_pose`` paired, in arrival order, with a sparse reward message;
with ``sparse_reward_topic`` empty every ``/ee_pose`` is a step.
"""

from collections import deque
from functools import partial
import sys
import threading
import time
from typing import Any, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, PoseStamped
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Float32, String
from std_srvs.srv import Trigger
from visual_rl_stack.core.devices import limit_thread_torch
from visual_rl_stack.perception.preprocess import FrameRejected
from visual_rl_stack.perception.sync import MultiViewSynchronizer, SyncedSet
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import run_node
from visual_rl_stack.ros.msg_conversions import pose_to_arrays, pose_to_matrix, stamp_to_seconds
from visual_rl_stack.ros.node_params import (configure_or_destroy, declare_extrinsics,
                                             declare_params, distinct_names, ParamSpec)
from visual_rl_stack.sim.cameras import CameraFrame
from visualization_msgs.msg import Marker, MarkerArray

from .affordance import WAYPOINT_ORDER
from .backends import backend_opener
from .dense_reward import RewardSettings
from .episode_affordance import EpisodeAffordance, ERROR, OK, Plan, WARN
from .frames import frame_from_messages

NODE_NAME = 'affordance_node'
#: Plan levels -> diagnostic levels.
LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}
#: Frame checks that mean a misconfigured camera (ERROR) rather than a bad moment (WARN).
CONFIG_CHECKS = ('encoding', 'size', 'conversion', 'intrinsics', 'frame', 'pose')
#: Steps kept waiting for their other half (pose or sparse reward) before giving up.
PAIRING_QUEUE = 10
#: Marker colours per keypoint name (RGB).
COLORS = {'pre_contact': (1.0, 0.8, 0.0), 'grasp': (1.0, 0.2, 0.2),
          'post_contact': (0.2, 0.8, 1.0), 'target': (0.2, 1.0, 0.3),
          'function': (0.8, 0.3, 1.0)}

PARAMS = {
    'backend': ParamSpec('keypoint_net', 'Keypoint backend (vlm_affordance.backends) asked at '
                         'every episode start.', read_only=True),
    'model_path': ParamSpec('', 'Local model folder of the backend; empty for a backend that '
                            'ships its weights.', read_only=True),
    'max_attempts': ParamSpec(3, 'Asks per query before giving up (retry budget).', 1, 20,
                              read_only=True),
    'alpha': ParamSpec(0.5, 'Dense reward scale: the dense term stays below alpha, under the '
                       'success reward 1.', 0.01, 0.99, read_only=True),
    'epsilon': ParamSpec(0.03, 'Distance (m) at which the TCP has reached a waypoint.',
                         0.001, 1.0, read_only=True),
    'potential': ParamSpec(False, "Pay potential-based shaping gamma * phi(s') - phi(s) "
                           'instead of the progress phi itself.', read_only=True),
    'gamma': ParamSpec(0.99, 'Discount of the potential-based variant.', 0.01, 1.0,
                       read_only=True),
    'views': ParamSpec(['front', 'side'], 'Camera views prompted and lifted from (topics '
                       '/<cam>/...).', read_only=True),
    'sparse_reward_topic': ParamSpec(topics.TASK_REWARD, 'std_msgs/Float32 sparse reward, one '
                                     'per step, combined into /reward/dense; empty: none, '
                                     'every /ee_pose is a step.', read_only=True),
    'use_pose_topics': ParamSpec(True, 'Camera poses from /<cam>/pose (true) or from the static '
                                 'parameters extrinsics.<cam> = [x, y, z, qx, qy, qz, qw].',
                                 read_only=True),
    'max_invalid_depth_fraction': ParamSpec(
        0.5, 'Views whose depth has more pixels without a reading are refused (sparse only).',
        0.0, 1.0, read_only=True),
    'sync_tolerance': ParamSpec(0.02, 'Largest stamp difference (s) inside one set of views.',
                                0.0, 1.0, read_only=True),
    'republish_period': ParamSpec(1.0, 'Seconds (wall clock) between republishing keypoints, '
                                  'markers and the query diagnostic.', 0.05, 60.0,
                                  read_only=True),
    'log_path': ParamSpec('', 'JSONL file every raw model reply is appended to; empty: none.',
                          read_only=True),
    'query_threads': ParamSpec(1, 'torch intra-op threads of the query worker; more let its '
                               'OpenMP pool slow the torch work of the other threads of the '
                               'process (4x measured on 2 cores).', 1, 64, read_only=True),
}


class AffordanceNode(Node):
    """ROS adapter of :class:`EpisodeAffordance`; ``kwargs`` go to ``rclpy.node.Node``."""

    def __init__(self, **kwargs: Any) -> None:
        """Configure the node; invalid parameters raise ValueError (nothing is left running)."""
        super().__init__(NODE_NAME, **kwargs)
        configure_or_destroy(self, self._configure)

    def _configure(self) -> None:
        """Read and check parameters, then build the core, the interfaces and the worker."""
        values = declare_params(self, PARAMS)
        self.views = distinct_names(NODE_NAME, 'views', [v for v in values['views'] if v])
        self._extrinsics = ({} if values['use_pose_topics']
                            else declare_extrinsics(self, self.views))
        self._max_invalid = values['max_invalid_depth_fraction']
        backend, model = values['backend'], values['model_path']
        self.core = EpisodeAffordance(
            backend_opener(backend, model or None), backend, self.views,
            RewardSettings(epsilon=values['epsilon'], alpha=values['alpha'],
                           potential=values['potential'], gamma=values['gamma']),
            max_attempts=values['max_attempts'], log_path=values['log_path'] or None)
        streams = ['color', 'depth', 'camera_info'] + (['pose'] if not self._extrinsics else [])
        self._sync = MultiViewSynchronizer(self.views, streams, values['sync_tolerance'], 3,
                                           max(0.5, values['sync_tolerance']))
        self._lock = threading.Lock()
        self._episode = 0
        self._waiting = False
        self._tolerance = values['sync_tolerance']
        self._query_threads = values['query_threads']
        self._sets: deque = deque(maxlen=3)
        self._start_stamp: Optional[float] = None
        self._poses: deque = deque()
        self._sparse: deque = deque()
        self._last_report: dict[str, float] = {}
        self._status: Optional[DiagnosticStatus] = None
        self._job: Optional[tuple] = None
        self._stop = False
        self._ready = threading.Condition(self._lock)
        self._create_interfaces(streams, values['sparse_reward_topic'],
                                values['republish_period'])
        self._worker = threading.Thread(target=self._work, daemon=True, name=f'{NODE_NAME}_query')
        self._worker.start()
        self.get_logger().info(f'backend {backend!r} on views {self.views}; rewards on '
                               f'{topics.DENSE_REWARD}')

    def _create_interfaces(self, streams: list[str], sparse_topic: str, period: float) -> None:
        """Create subscriptions, latched publishers, the query service and the timer."""
        reliable, latched = topics.RELIABLE_QOS, topics.LATCHED_QOS
        kinds = {'color': (Image, topics.color_topic), 'depth': (Image, topics.depth_topic),
                 'camera_info': (CameraInfo, topics.camera_info_topic),
                 'pose': (PoseStamped, topics.camera_pose_topic)}
        for view in self.views:
            for stream in streams:
                msg_type, topic = kinds[stream]
                self.create_subscription(msg_type, topic(view),
                                         partial(self._on_camera, view, stream),
                                         topics.SENSOR_QOS)
        self.create_subscription(String, topics.TASK_INSTRUCTION, self._on_instruction, latched)
        self.create_subscription(PoseStamped, topics.EE_POSE, self._on_ee_pose, reliable)
        self._paired = bool(sparse_topic)
        if self._paired:
            self.create_subscription(Float32, sparse_topic, self._on_sparse, reliable)
        self.keypoints_pub = self.create_publisher(PoseArray, topics.AFFORDANCE_KEYPOINTS,
                                                   latched)
        self.markers_pub = self.create_publisher(MarkerArray, topics.AFFORDANCE_MARKERS, latched)
        self.reward_pub = self.create_publisher(Float32, topics.DENSE_REWARD, reliable)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, reliable)
        self.create_service(Trigger, topics.AFFORDANCE_QUERY, self._on_query)
        self.create_timer(period, self._on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # Inputs -------------------------------------------------------------------------------

    def _on_instruction(self, msg: String) -> None:
        """Start an episode: forget the plan; its first views will be queried."""
        with self._lock:
            self._episode += 1
            self.core.new_episode(msg.data, f'episode{self._episode}')
            self._waiting, self._start_stamp = True, None
            self._poses.clear()
            self._sparse.clear()
            self._publish_plan(None)
        self.get_logger().info(f'episode {self._episode}: {msg.data!r}; waiting for the views')

    def _on_camera(self, view: str, stream: str, msg: Any) -> None:
        """Keep the latest complete set of views; the first after an instruction is queried."""
        try:
            synced = self._sync.add(view, stream, stamp_to_seconds(msg.header.stamp), msg)
        except Exception as error:  # noqa: BLE001 - the callback boundary
            self._report('inputs', DiagnosticStatus.ERROR, f'{view} {stream} dropped: {error}')
            return
        for dropped in self._sync.pop_dropped():
            missing = ', '.join(f'{v} ({", ".join(s)})' for v, s in dropped.missing.items())
            self._report('inputs', DiagnosticStatus.WARN,
                         f'views stamped {dropped.stamp_s:.3f} s incomplete: missing {missing}')
        if synced is None:
            return
        with self._lock:
            self._sets.append(synced)
            self._plan_if_ready()

    def _plan_if_ready(self) -> None:
        """
        Queue the episode's first views once known (lock held).

        The episode starts at the stamp of the first ``/ee_pose`` after the
        instruction; its views may be handled before the instruction (they are
        other topics), so the last few sets are kept and the earliest one not
        older than that stamp is queried.
        """
        if not self._waiting or self._start_stamp is None:
            return
        fresh = [s for s in self._sets if s.stamp_s >= self._start_stamp - self._tolerance]
        if fresh:
            self._waiting = False
            self._queue(min(fresh, key=lambda s: s.stamp_s), self.core.episode_id)

    def _on_ee_pose(self, msg: PoseStamped) -> None:
        """Pair the TCP position with the step's sparse reward (or use it alone)."""
        if msg.header.frame_id != topics.WORLD_FRAME:
            self._report('inputs', DiagnosticStatus.ERROR, f'/ee_pose in frame '
                         f'{msg.header.frame_id!r}, expected {topics.WORLD_FRAME!r}; ignored')
            return
        position, _ = pose_to_arrays(msg.pose)
        if not np.isfinite(position).all():
            self._report('inputs', DiagnosticStatus.ERROR, '/ee_pose is not finite; ignored')
            return
        with self._lock:
            if self._waiting and self._start_stamp is None:
                self._start_stamp = stamp_to_seconds(msg.header.stamp)
                self._plan_if_ready()
            self._poses.append(position)
            if not self._paired:
                self._sparse.append(0.0)
            elif len(self._poses) > PAIRING_QUEUE:
                self._sparse.append(0.0)
                self._report('inputs', DiagnosticStatus.WARN, 'no sparse reward arrives with '
                             '/ee_pose; steps are rewarded as sparse 0')
            self._emit_steps()

    def _on_sparse(self, msg: Float32) -> None:
        """Pair the step's sparse reward with its TCP position."""
        with self._lock:
            self._sparse.append(float(msg.data))
            while len(self._sparse) > PAIRING_QUEUE:
                self._sparse.popleft()
            self._emit_steps()

    def _emit_steps(self) -> None:
        """Publish the reward of every paired step (call with the lock held)."""
        while self._poses and self._sparse:
            reward = self.core.step(self._poses.popleft(), self._sparse.popleft())
            self.reward_pub.publish(Float32(data=float(reward)))

    def _on_query(self, _request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        """Queue an uncached query of the current episode with the latest views."""
        with self._lock:
            if not self._sets:
                response.success = False
                response.message = f'no complete set of the views {self.views} received yet'
                return response
            self.core.retry_open()
            self._queue(self._sets[-1], None)
            stamp = self._sets[-1].stamp_s
        response.success = True
        response.message = f'query queued for episode {self._episode} (views at {stamp:.3f} s)'
        return response

    # Querying -----------------------------------------------------------------------------

    def _queue(self, synced: SyncedSet, episode_id: Optional[str]) -> None:
        """Hand a set of views to the worker, replacing an unstarted job (lock held)."""
        self._job = (self._episode, self.core.instruction, episode_id, synced)
        self._ready.notify()

    def _work(self) -> None:
        """Answer queued queries until the node is destroyed."""
        limit_thread_torch(self._query_threads)
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._stop or self._job is not None)
                if self._stop:
                    return
                (episode, instruction, episode_id, synced), self._job = self._job, None
            try:
                plan = self.core.make_plan(self._frames(synced), instruction, episode_id)
            except FrameRejected as error:
                level = ERROR if error.check in CONFIG_CHECKS else WARN
                plan = Plan(instruction, None, f'sparse only: {error}', level,
                            details={'check': error.check, **error.values})
            except Exception as error:  # noqa: BLE001 - the thread boundary
                plan = Plan(instruction, None, f'sparse only: {type(error).__name__}: {error}',
                            ERROR)
            with self._lock:
                if episode != self._episode or self._stop or not self.context.ok():
                    continue  # a newer episode started meanwhile, or the node is closing
                current = self.core.plan
                if episode_id is None and not plan.ok and current is not None and current.ok:
                    # A failed re-query must not throw away waypoints that work.
                    self._publish_status(self._make_status(
                        LEVELS[plan.level], 'query',
                        f'{plan.diagnostic}; keeping the previous waypoints', plan.details))
                    continue
                self.core.install(plan)
                self._publish_plan(plan)

    def _frames(self, synced: SyncedSet) -> dict[str, CameraFrame]:
        """Unpack one set of views into full-resolution frames (raises FrameRejected)."""
        frames = {}
        for view in self.views:
            if view in self._extrinsics:
                pose = self._extrinsics[view]
            else:
                msg = synced.item(view, 'pose')
                if msg.header.frame_id != topics.WORLD_FRAME:
                    raise FrameRejected(view, 'pose', 'frame', f'pose is in frame '
                                        f'{msg.header.frame_id!r}, expected '
                                        f'{topics.WORLD_FRAME!r}')
                pose = pose_to_matrix(msg.pose)
            frames[view] = frame_from_messages(view, synced.item(view, 'color'),
                                               synced.item(view, 'depth'),
                                               synced.item(view, 'camera_info'), pose,
                                               self._max_invalid)
        return frames

    # Outputs ------------------------------------------------------------------------------

    def _publish_plan(self, plan: Optional[Plan]) -> None:
        """Publish the keypoints, markers and diagnostic of ``plan`` (None: waiting; lock held)."""
        stamp = self.get_clock().now().to_msg()
        poses = PoseArray()
        poses.header.stamp, poses.header.frame_id = stamp, topics.WORLD_FRAME
        waypoints = [] if plan is None or not plan.ok else list(plan.waypoints)
        for point in waypoints:
            pose = Pose()
            pose.position = Point(x=float(point[0]), y=float(point[1]), z=float(point[2]))
            pose.orientation.w = 1.0
            poses.poses.append(pose)
        self._keypoints, self._markers = poses, self._marker_array(waypoints, stamp)
        if plan is None:
            status = self._make_status(DiagnosticStatus.OK, 'query',
                                       f'episode {self._episode}: waiting for the views '
                                       f'{self.views}', {})
        else:
            values = {'episode': str(self._episode), 'instruction': plan.instruction,
                      'latency_s': f'{plan.latency_s:.3f}', **plan.details}
            status = self._make_status(LEVELS[plan.level], 'query', plan.diagnostic, values)
            if plan.level != OK:
                self.get_logger().warning(plan.diagnostic)
        self._status = status
        self._republish()

    def _marker_array(self, waypoints: list, stamp: Any) -> MarkerArray:
        """Return labelled spheres and the path through the waypoints (or a clear-all)."""
        if not waypoints:
            clear = Marker(action=Marker.DELETEALL)
            clear.header.stamp, clear.header.frame_id = stamp, topics.WORLD_FRAME
            return MarkerArray(markers=[clear])
        markers = []

        def marker(kind: int, ns: str, index: int, rgb: tuple, scale: float) -> Marker:
            m = Marker(type=kind, ns=ns, id=index, action=Marker.ADD)
            m.header.stamp, m.header.frame_id = stamp, topics.WORLD_FRAME
            m.scale.x = m.scale.y = m.scale.z = scale
            m.color = ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=1.0)
            m.pose.orientation.w = 1.0
            markers.append(m)
            return m

        for index, (name, point) in enumerate(zip(WAYPOINT_ORDER, waypoints)):
            at = Point(x=float(point[0]), y=float(point[1]), z=float(point[2]))
            marker(Marker.SPHERE, 'keypoints', index, COLORS[name], 0.02).pose.position = at
            label = marker(Marker.TEXT_VIEW_FACING, 'labels', index, (1.0, 1.0, 1.0), 0.02)
            label.text = name
            label.pose.position = Point(x=at.x, y=at.y, z=at.z + 0.025)
        path = marker(Marker.LINE_STRIP, 'path', 0, (1.0, 1.0, 1.0), 0.005)
        path.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in waypoints]
        return MarkerArray(markers=markers)

    def _on_timer(self) -> None:
        """Republish the latest outputs (latched topics lose nothing, late tools catch up)."""
        with self._lock:
            self._republish()

    def _republish(self) -> None:
        """Publish the latest keypoints, markers and query diagnostic (lock held)."""
        if self._status is None:
            return
        self.keypoints_pub.publish(self._keypoints)
        self.markers_pub.publish(self._markers)
        self._publish_status(self._status)

    def _make_status(self, level: bytes, name: str, message: str,
                     values: dict[str, str]) -> DiagnosticStatus:
        """Build one diagnostic status of this node."""
        return DiagnosticStatus(level=level, name=f'{NODE_NAME}: {name}', message=message,
                                hardware_id=NODE_NAME,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    def _publish_status(self, status: DiagnosticStatus) -> None:
        """Publish one status on /diagnostics."""
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(array)

    def _report(self, name: str, level: bytes, message: str) -> None:
        """Publish an input problem, at most once a second per kind, and log it."""
        now = time.monotonic()
        if now - self._last_report.get(name, float('-inf')) < 1.0:
            return
        self._last_report[name] = now
        self._publish_status(self._make_status(level, name, message, {}))
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def destroy_node(self) -> None:
        """Stop the query thread (a query in progress finishes unpublished), then the node."""
        worker = getattr(self, '_worker', None)
        if worker is not None:
            with self._ready:
                self._stop = True
                self._ready.notify_all()
            if worker is not threading.current_thread():
                worker.join()
            self._worker = None
        super().destroy_node()


def main(args: Optional[list[str]] = None) -> int:
    """Run the affordance node until Ctrl-C; exit 1 with a message on invalid parameters."""
    return run_node(AffordanceNode, args)


if __name__ == '__main__':
    sys.exit(main())
