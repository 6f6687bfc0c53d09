"""
Camera node: synchronise the cameras, publish the tiled multi-view image and the fused cloud.

Inputs per camera ``<cam>``: colour, aligned depth, CameraInfo and (unless
static extrinsics are configured) the optical frame's pose in ``world``.
Outputs: ``/perception/multiview/image``, ``/perception/points`` and
``/diagnostics``. A bad frame is dropped and reported; the node keeps running.
"""

from collections import Counter
from functools import partial
import sys
import threading
import time
from typing import Any, Callable, Mapping, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visual_rl_stack.ros.bringup import run_node
from visual_rl_stack.ros.msg_conversions import array_to_image, pose_to_matrix, stamp_to_seconds
from visual_rl_stack.ros.msg_conversions import to_point_cloud2
from visual_rl_stack.ros.node_params import (configure_or_destroy, declare_extrinsics,
                                             declare_params, distinct_names, ParamSpec)
from visual_rl_stack.ros.topics import (camera_info_topic, camera_pose_topic, color_topic,
                                        depth_topic, DIAGNOSTICS, MULTIVIEW_IMAGE, POINTS,
                                        SENSOR_QOS, WORLD_FRAME)

from .point_cloud import CloudSettings, fuse_views
from .preprocess import FrameRejected, prepare_view, tile_views
from .sync import DroppedSet, MultiViewSynchronizer, SyncedSet

NODE_NAME = 'camera_node'
MULTIVIEW_FRAME = 'multiview'

#: Stream name -> (message type, topic of a camera).
STREAMS: dict[str, tuple[type, Callable[[str], str]]] = {
    'color': (Image, color_topic),
    'depth': (Image, depth_topic),
    'camera_info': (CameraInfo, camera_info_topic),
    'pose': (PoseStamped, camera_pose_topic),
}

#: Checks that mean the input is misconfigured (ERROR) rather than momentarily bad (WARN).
CONFIG_CHECKS = ('encoding', 'size', 'conversion', 'intrinsics', 'frame')

PARAMS = {
    'cameras': ParamSpec(['front', 'side', 'wrist'],
                         'Camera names (topics /<cam>/...); tiled left to right in this order.',
                         read_only=True),
    'sync_tolerance': ParamSpec(0.02, 'Largest stamp difference (s) inside one multi-view set.',
                                0.0, 1.0, read_only=True),
    'sync_timeout': ParamSpec(0.5, 'A partial set this much older (s, stamp time) than the '
                              'newest message is given up and its missing views reported.',
                              0.0, 60.0, read_only=True),
    'sync_queue_size': ParamSpec(5, 'Messages kept per camera stream while waiting for a set.',
                                 1, 100, read_only=True),
    'image_width': ParamSpec(128, 'Width (px) of each view in the tiled image (model input).',
                             8, 4096, read_only=True),
    'image_height': ParamSpec(128, 'Height (px) of each view in the tiled image (model input).',
                              8, 4096, read_only=True),
    'max_invalid_depth_fraction': ParamSpec(
        0.5, 'Frames whose depth has more pixels without a reading (NaN, inf, <= 0) are dropped.',
        0.0, 1.0, read_only=True),
    'publish_points': ParamSpec(True, 'Publish the fused, workspace-cropped point cloud.',
                                read_only=True),
    'voxel_size': ParamSpec(0.005, 'Voxel edge (m) of the cloud downsampling; 0 = off.',
                            0.0, 1.0, read_only=True),
    'workspace_min': ParamSpec([0.2, -0.45, -0.02], 'Lower corner [x, y, z] (m, world) of the '
                               'box the cloud is cropped to.', read_only=True),
    'workspace_max': ParamSpec([0.9, 0.45, 0.5], 'Upper corner [x, y, z] (m, world) of the '
                               'box the cloud is cropped to.', read_only=True),
    'outlier_neighbors': ParamSpec(0, 'Neighbours of the statistical outlier filter; 0 = off.',
                                   0, 500, read_only=True),
    'outlier_std_ratio': ParamSpec(2.0, 'Standard deviations beyond which a point is an outlier.',
                                   0.1, 10.0, read_only=True),
    'use_pose_topics': ParamSpec(True, 'Camera poses from /<cam>/pose (true) or from the static '
                                 'parameters extrinsics.<cam> = [x, y, z, qx, qy, qz, qw].',
                                 read_only=True),
    'diagnostic_period': ParamSpec(1.0, 'Seconds (wall clock) between status diagnostics.',
                                   0.05, 60.0, read_only=True),
}


class CameraNode(Node):
    """Multi-view RGB-D synchroniser and preprocessor; ``kwargs`` go to ``rclpy.node.Node``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        configure_or_destroy(self, self._configure)

    def _configure(self) -> None:
        """Read and check parameters, then create the synchroniser, topics and timers."""
        params = declare_params(self, PARAMS)
        self._cameras = distinct_names(NODE_NAME, 'cameras', params['cameras'])
        self._points_views = list(declare_params(self, {'points_views': ParamSpec(
            self._cameras, 'Cameras whose depth feeds the point cloud (default: all).',
            read_only=True)})['points_views'])
        unknown = sorted(set(self._points_views) - set(self._cameras))
        if unknown:
            raise ValueError(f'{NODE_NAME}: points_views {unknown} are not in cameras '
                             f'{self._cameras}')
        if params['sync_timeout'] < params['sync_tolerance']:
            raise ValueError(f'{NODE_NAME}: sync_timeout ({params["sync_timeout"]}) must be >= '
                             f'sync_tolerance ({params["sync_tolerance"]})')
        self._size = (params['image_width'], params['image_height'])
        self._max_invalid = params['max_invalid_depth_fraction']
        self._publish_points = params['publish_points']
        self._cloud_settings = CloudSettings(
            workspace_min=tuple(params['workspace_min']),
            workspace_max=tuple(params['workspace_max']), voxel_size=params['voxel_size'],
            outlier_neighbors=params['outlier_neighbors'],
            outlier_std_ratio=params['outlier_std_ratio'])
        pose_from_topics = self._publish_points and params['use_pose_topics']
        static_poses = self._publish_points and not params['use_pose_topics']
        self._extrinsics = (declare_extrinsics(self, self._points_views) if static_poses
                            else {})
        streams = ['color', 'depth', 'camera_info'] + (['pose'] if pose_from_topics else [])
        self._sync = MultiViewSynchronizer(self._cameras, streams, params['sync_tolerance'],
                                           params['sync_queue_size'], params['sync_timeout'])

        self._report_lock = threading.Lock()
        self._last_report: dict[str, float] = {}
        self._rejected: Counter = Counter()
        self._published = {'sets': 0, 'clouds': 0}
        self._period_start = (time.monotonic(), 0, 0, 0)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS, 10)
        self._image_pub = self.create_publisher(Image, MULTIVIEW_IMAGE, SENSOR_QOS)
        self._inputs = [
            self.create_subscription(msg_type, topic(camera),
                                     partial(self._on_message, camera, stream), SENSOR_QOS)
            for camera in self._cameras for stream in streams
            for msg_type, topic in [STREAMS[stream]]]
        self._cloud_worker: Optional[threading.Thread] = None
        if self._publish_points:
            self._points_pub = self.create_publisher(PointCloud2, POINTS, SENSOR_QOS)
            self._cloud_job: Optional[tuple[Any, list]] = None
            self._cloud_stop = False
            self._cloud_ready = threading.Condition()
            # A thread of the node's own, not an executor callback: the cloud then never takes
            # an executor thread (nor the only one) away from the tiled image, whatever executor
            # spins the node. It takes the latest queued views only, so it may lag, never queue.
            self._cloud_worker = threading.Thread(target=self._cloud_loop, daemon=True,
                                                  name=f'{NODE_NAME}_cloud')
            self._cloud_worker.start()
        self.create_timer(params['diagnostic_period'], self._publish_status,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f'synchronising {self._cameras} ({", ".join(streams)}) -> {MULTIVIEW_IMAGE} '
            f'{self._size[0] * len(self._cameras)}x{self._size[1]}'
            + (f', {POINTS} from {self._points_views}' if self._publish_points else ''))

    def _on_message(self, camera: str, stream: str, msg: Any) -> None:
        """Queue one camera message; publish the set it completes. Never raises."""
        try:
            synced = self._sync.add(camera, stream, stamp_to_seconds(msg.header.stamp), msg)
            for dropped in self._sync.pop_dropped():
                self._report_dropped_set(dropped)
            if synced is not None:
                self._publish_set(synced)
        except FrameRejected as exc:
            self._rejected[exc.check] += 1
            level = DiagnosticStatus.ERROR if exc.check in CONFIG_CHECKS else DiagnosticStatus.WARN
            self._report(STREAMS[exc.stream][1](exc.view), level, f'frame dropped: {exc}',
                         {'check': exc.check, **exc.values})
        except Exception as exc:  # the callback boundary: a bad message must not stop the node
            self._rejected['error'] += 1
            self._report(STREAMS[stream][1](camera), DiagnosticStatus.ERROR,
                         f'frame dropped: {type(exc).__name__}: {exc}', {})

    def _publish_set(self, synced: SyncedSet) -> None:
        """Check and resize every view, publish the tiled image and queue the cloud."""
        frames = {camera: prepare_view(camera, synced.item(camera, 'color'),
                                       synced.item(camera, 'depth'),
                                       synced.item(camera, 'camera_info'), *self._size,
                                       self._max_invalid)
                  for camera in self._cameras}
        posed = [(frames[camera], self._camera_pose(camera, synced))
                 for camera in self._points_views] if self._publish_points else []
        stamp = synced.item(*synced.newest).header.stamp
        tiled = tile_views({camera: frame.rgb for camera, frame in frames.items()},
                           self._cameras)
        self._image_pub.publish(array_to_image(tiled, 'rgb8', stamp, MULTIVIEW_FRAME))
        self._published['sets'] += 1
        if posed:
            with self._cloud_ready:
                self._cloud_job = (stamp, posed)
                self._cloud_ready.notify()

    def _camera_pose(self, camera: str, synced: SyncedSet) -> np.ndarray:
        """Return the camera's optical frame in the world frame (4x4)."""
        if camera in self._extrinsics:
            return self._extrinsics[camera]
        msg = synced.item(camera, 'pose')
        if msg.header.frame_id != WORLD_FRAME:
            raise FrameRejected(camera, 'pose', 'frame', f'pose is in frame '
                                f'{msg.header.frame_id!r}, expected {WORLD_FRAME!r}',
                                {'frame_id': msg.header.frame_id})
        return pose_to_matrix(msg.pose)

    def _cloud_loop(self) -> None:
        """
        Fuse and publish the latest queued views until the node is destroyed.

        After each cloud the thread rests as long as the cloud took (at most
        half of one core for clouds): the tiled image path then always finds
        free CPU time, and the cloud rate adapts to what the machine can spare.
        """
        while True:
            with self._cloud_ready:
                self._cloud_ready.wait_for(lambda: self._cloud_stop or self._cloud_job is not None)
                if self._cloud_stop:
                    return
                job, self._cloud_job = self._cloud_job, None
            started = time.monotonic()
            self._publish_cloud(*job)
            with self._cloud_ready:
                self._cloud_ready.wait_for(lambda: self._cloud_stop,
                                           time.monotonic() - started)

    def _publish_cloud(self, stamp: Any, posed: list) -> None:
        """Fuse (frame, pose) views into a cloud and publish it. Never raises."""
        try:
            points, colors = fuse_views(posed, self._cloud_settings)
            msg, error = to_point_cloud2(points, colors, stamp, WORLD_FRAME), None
        except Exception as exc:  # the thread boundary: keep serving the next frame
            msg, error = None, exc
        with self._cloud_ready:  # destroy_node() waits for this block
            if self._cloud_stop or not self.context.ok():  # shutting down: nothing to say
                return
            try:
                if error is not None:
                    raise error
                self._points_pub.publish(msg)
                self._published['clouds'] += 1
            except Exception as exc:
                self._rejected['cloud'] += 1
                self._report(POINTS, DiagnosticStatus.ERROR,
                             f'point cloud dropped: {type(exc).__name__}: {exc}', {})

    def destroy_node(self) -> None:
        """Stop the cloud thread (it finishes the cloud in hand, unpublished), then the node."""
        worker = getattr(self, '_cloud_worker', None)
        if worker is not None:
            with self._cloud_ready:
                self._cloud_stop = True
                self._cloud_ready.notify_all()
            if worker is not threading.current_thread():
                worker.join()
            self._cloud_worker = None
        super().destroy_node()

    def _report_dropped_set(self, dropped: DroppedSet) -> None:
        """Say which views a given-up set lacked."""
        self._rejected['incomplete_set'] += 1
        views = ', '.join(f'{view} ({", ".join(streams)})'
                          for view, streams in dropped.missing.items())
        why = ('a newer complete set arrived first' if dropped.reason == 'superseded'
               else f'nothing came within sync_timeout {self._sync.max_delay_s} s')
        self._report('sync', DiagnosticStatus.WARN,
                     f'set stamped {dropped.stamp_s:.3f} s dropped: missing or late views '
                     f'{views}; {why}',
                     {'stamp': f'{dropped.stamp_s:.6f}', 'reason': dropped.reason,
                      'missing_views': ', '.join(dropped.missing)})

    def _publish_status(self) -> None:
        """Publish an OK status with rates, or WARN when inputs arrive but no set is published."""
        now = time.monotonic()
        start, sets, clouds, received = self._period_start
        stats = self._sync.stats
        self._period_start = (now, self._published['sets'], self._published['clouds'],
                              stats.received)
        elapsed = max(now - start, 1e-9)
        set_rate = (self._published['sets'] - sets) / elapsed
        stalled = set_rate == 0 and stats.received > received
        if stats.received == 0:
            waiting = ', '.join(sub.topic_name for sub in self._inputs)
            self._report(MULTIVIEW_IMAGE, DiagnosticStatus.WARN,
                         f'waiting for the camera drivers: nothing received yet on {waiting}',
                         {}, throttle=False)
            return
        values = {'published sets/s': f'{set_rate:.2f}',
                  'published clouds/s': f'{(self._published["clouds"] - clouds) / elapsed:.2f}',
                  'input messages/s': f'{(stats.received - received) / elapsed:.2f}',
                  'published sets': str(self._published['sets']),
                  'dropped incomplete sets': str(stats.dropped_sets),
                  'late messages': str(sum(stats.late.values())),
                  'queue overflows': str(stats.overflow),
                  **{f'rejected ({check})': str(n) for check, n in sorted(self._rejected.items())}}
        level = DiagnosticStatus.WARN if stalled else DiagnosticStatus.OK
        message = ('inputs arrive but no complete, valid multi-view set was published'
                   if stalled else f'publishing {set_rate:.1f} sets/s')
        self._report(MULTIVIEW_IMAGE, level, message, values, throttle=False)

    def _report(self, name: str, level: bytes, message: str, values: Mapping[str, str],
                throttle: bool = True) -> None:
        """Publish one diagnostic status; problems are sent at most once a second per name."""
        with self._report_lock:
            now = time.monotonic()
            if throttle and now - self._last_report.get(name, float('-inf')) < 1.0:
                return
            self._last_report[name] = now
        status = DiagnosticStatus(level=level, name=f'{NODE_NAME}: {name}', message=message,
                                  hardware_id=NODE_NAME,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)
        if level != DiagnosticStatus.OK:
            self.get_logger().warning(message, throttle_duration_sec=5.0)


def main(args: Optional[list[str]] = None) -> int:
    """
    Run the camera node until Ctrl-C; exit 1 on bad parameters.

    A SingleThreadedExecutor (:func:`run_node`): the point cloud has a thread
    of its own, and rclpy's MultiThreadedExecutor wakes up late for ready
    subscriptions (it added a median ~90 ms from camera to tiled image here,
    against ~5 ms).
    """
    return run_node(CameraNode, args)


if __name__ == '__main__':
    sys.exit(main())
