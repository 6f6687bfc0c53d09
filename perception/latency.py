"""
Measure camera-to-multiview-image latency, with a synthetic camera rig to drive it.

The rig ray-traces an analytic scene (a table at z = 0 with a 10 cm block on
it) seen from above by each camera, so the expected point cloud is known; the
tests use it too.
"""

from contextlib import contextmanager
import math
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

from builtin_interfaces.msg import Time
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, PointCloud2
from visual_rl_stack.ros.msg_conversions import (array_to_image, make_camera_info,
                                                 make_pose_stamped, stamp_from_seconds)
from visual_rl_stack.ros.topics import MULTIVIEW_IMAGE, POINTS, SENSOR_QOS, WORLD_FRAME

from .camera_node import CameraNode, STREAMS

#: Optical frame looking straight down: z_cam = -z, x_cam = -y, y_cam = -x (world).
LOOKING_DOWN_XYZW = (math.sqrt(0.5), -math.sqrt(0.5), 0.0, 0.0)
LOOKING_DOWN = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
#: A 10 cm block standing on the table (z = 0), world frame.
BLOCK_MIN = np.array([0.5, -0.05, 0.0])
BLOCK_MAX = np.array([0.6, 0.05, 0.1])


def camera_position(index: int) -> tuple[float, float, float]:
    """Place camera ``index`` 0.8 m above the table, spaced along the workspace diagonal."""
    return (0.45 + 0.1 * index, -0.2 + 0.2 * index, 0.8)


def view_color(index: int) -> tuple[int, int, int]:
    """Give each view's table a distinct colour, so tiling order can be checked."""
    return ((60 * index + 200) % 256, (90 * index + 40) % 256, (150 * index + 80) % 256)


def intrinsics(width: int, height: int) -> np.ndarray:
    """Pinhole K with a ~53 degree horizontal field of view."""
    return np.array([[float(width), 0.0, (width - 1) / 2],
                     [0.0, float(width), (height - 1) / 2],
                     [0.0, 0.0, 1.0]])


def synthetic_view(index: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray-trace (rgb, depth in metres) of the table and the white block from camera ``index``."""
    v, u = np.indices((height, width))
    K = intrinsics(width, height)
    rays_camera = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1],
                            np.ones(u.shape)], axis=-1)
    rays = rays_camera @ LOOKING_DOWN.T
    origin = np.asarray(camera_position(index))
    with np.errstate(divide='ignore', invalid='ignore'):
        t_low, t_high = (BLOCK_MIN - origin) / rays, (BLOCK_MAX - origin) / rays
    t_enter = np.minimum(t_low, t_high).max(axis=-1)
    t_exit = np.maximum(t_low, t_high).min(axis=-1)
    on_block = t_enter <= t_exit
    # Rays have unit optical z, so the ray parameter is the depth.
    depth = np.where(on_block, t_enter, -origin[2] / rays[..., 2]).astype(np.float32)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:] = view_color(index)
    rgb[on_block] = 255
    return rgb, depth


class SyntheticCameraRig:
    """Publish rgb8 colour, 32FC1 depth, CameraInfo and (unless left out) pose for views."""

    def __init__(self, node: Node, views: Sequence[str], width: int, height: int,
                 with_pose: bool = True) -> None:
        self.views = list(views)
        self.width = width
        self.height = height
        self._publishers = {(view, stream): node.create_publisher(msg_type, topic(view),
                                                                  SENSOR_QOS)
                            for view in self.views
                            for stream, (msg_type, topic) in STREAMS.items()
                            if with_pose or stream != 'pose'}
        self._images = [synthetic_view(i, width, height) for i in range(len(self.views))]

    def connected(self) -> bool:
        """Tell whether every publisher has a subscriber (best effort drops earlier ones)."""
        return all(pub.get_subscription_count() > 0 for pub in self._publishers.values())

    def messages(self, stamp: Time) -> dict[tuple[str, str], Any]:
        """Build every view's messages for one frame, all stamped ``stamp``."""
        messages = {}
        for index, view in enumerate(self.views):
            rgb, depth = self._images[index]
            optical = f'{view}_color_optical_frame'
            messages[(view, 'color')] = array_to_image(rgb, 'rgb8', stamp, optical)
            messages[(view, 'depth')] = array_to_image(depth, '32FC1', stamp, optical)
            messages[(view, 'camera_info')] = make_camera_info(
                intrinsics(self.width, self.height), self.width, self.height, stamp, optical)
            messages[(view, 'pose')] = make_pose_stamped(camera_position(index),
                                                         LOOKING_DOWN_XYZW, stamp, WORLD_FRAME)
        return messages

    def publish(self, messages: dict[tuple[str, str], Any]) -> None:
        """Publish messages built by :meth:`messages` (possibly altered or thinned)."""
        for key, msg in messages.items():
            if key in self._publishers:
                self._publishers[key].publish(msg)


def measure_multiview_latency(context: Optional[Context] = None, frames: int = 200,
                              views: Sequence[str] = ('front', 'side', 'wrist'),
                              width: int = 128, height: int = 128) -> dict:
    """
    Measure wall-clock delay from publishing a frame's messages to receiving the tiled image.

    Starts a camera node (with point clouds on) and a synthetic rig in
    ``context`` (an initialised rclpy context; None: a private one, shut down
    after), spins them on a SingleThreadedExecutor as ``camera_node`` does, and sends ``frames``
    frames one at a time. Returns median, p99 and mean in ms, and how many
    frames came back; ``points_*`` the same for the clouds (which may skip
    frames) from publishing a frame to its cloud arriving.
    """
    if context is None:
        context = Context()
        rclpy.init(context=context)
        try:
            return measure_multiview_latency(context, frames, views, width, height)
        finally:
            context.try_shutdown()
    camera = CameraNode(context=context, parameter_overrides=[
        Parameter('cameras', value=list(views)), Parameter('image_width', value=width),
        Parameter('image_height', value=height)])
    probe = Node('multiview_latency_probe', context=context)
    rig = SyntheticCameraRig(probe, views, width, height)
    arrivals = _Arrivals()
    image_sub = probe.create_subscription(Image, MULTIVIEW_IMAGE, arrivals.recorder('image'),
                                          SENSOR_QOS)
    probe.create_subscription(PointCloud2, POINTS, arrivals.recorder('points'), SENSOR_QOS)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(camera)
    executor.add_node(probe)
    delays, sent_at = [], []
    try:
        with _spinning(executor):
            arrivals.wait(lambda: rig.connected() and image_sub.get_publisher_count() > 0,
                          15.0, 'camera node and latency probe did not discover each other')
            warmup = 5
            for index in range(frames + warmup):
                stamp = stamp_from_seconds(1.0 + 0.1 * index)
                messages = rig.messages(stamp)
                sent = time.perf_counter()
                rig.publish(messages)
                received = arrivals.wait_for('image', stamp, 1.0)
                if index >= warmup:
                    sent_at.append((stamp, sent))
                    if received is not None:
                        delays.append(received - sent)
            # Let the last cloud finish, so no callback runs while the nodes go away.
            arrivals.wait_for('points', stamp, 2.0)
    finally:
        camera.destroy_node()
        probe.destroy_node()
    # Clouds may lag and skip frames (the node fuses the latest views only): their delay is
    # from publishing a frame to its cloud arriving, over the frames that got one.
    cloud_delays = [arrived - sent for arrived, sent in
                    ((arrivals.arrival('points', stamp), sent) for stamp, sent in sent_at)
                    if arrived is not None]
    return {**_summary(delays), 'frames': frames, 'received': len(delays),
            **{f'points_{key}': value for key, value in _summary(cloud_delays).items()},
            'points_received': len(cloud_delays), 'views': list(views),
            'width': width, 'height': height}


def _summary(delays: Sequence[float]) -> dict:
    """Median, p99 and mean (ms) of delays in seconds; NaN when there are none."""
    ms = np.asarray(delays) * 1e3
    return {'median_ms': float(np.median(ms)) if len(ms) else float('nan'),
            'p99_ms': float(np.percentile(ms, 99)) if len(ms) else float('nan'),
            'mean_ms': float(ms.mean()) if len(ms) else float('nan')}


class _Arrivals:
    """Record when messages of each kind arrive, by stamp, and let a thread wait for them."""

    def __init__(self) -> None:
        self._times: dict[tuple[str, int, int], float] = {}
        self._changed = threading.Condition()

    def recorder(self, kind: str) -> Callable[[Any], None]:
        """Return a subscription callback noting the arrival time of ``kind`` messages."""
        def record(msg: Any) -> None:
            with self._changed:
                stamp = msg.header.stamp
                self._times[(kind, stamp.sec, stamp.nanosec)] = time.perf_counter()
                self._changed.notify_all()
        return record

    def arrival(self, kind: str, stamp: Time) -> Optional[float]:
        """Return the arrival time of the ``kind`` message stamped ``stamp``, None if none came."""
        with self._changed:
            return self._times.get((kind, stamp.sec, stamp.nanosec))

    def wait_for(self, kind: str, stamp: Time, timeout: float) -> Optional[float]:
        """Return the arrival time of the ``kind`` message stamped ``stamp``, None on timeout."""
        key = (kind, stamp.sec, stamp.nanosec)
        with self._changed:
            self._changed.wait_for(lambda: key in self._times, timeout)
            return self._times.get(key)

    @staticmethod
    def wait(predicate: Callable[[], bool], timeout: float, failure: str) -> None:
        """Poll ``predicate`` (graph state, not messages) until it holds or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(failure)
            time.sleep(0.05)


@contextmanager
def _spinning(executor: Executor) -> Iterator[None]:
    """
    Spin ``executor`` in a background thread for the duration of the block.

    The thread stops by flag before ``executor.shutdown()``: shutting an
    executor down while it waits makes rclpy log errors.
    """
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        yield
    finally:
        stop.set()
        spinner.join()
        executor.shutdown()
