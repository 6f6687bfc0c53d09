"""Camera node over real DDS: tiled image, fused cloud, diagnostics for bad input, parameters."""

import os
import signal
import subprocess
import sys
import time

from conftest import next_domain_id, spin_until
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, PointCloud2
from visual_rl_stack.core.image_buffers import image_to_array
from visual_rl_stack.perception.camera_node import CameraNode
from visual_rl_stack.perception.latency import (measure_multiview_latency, SyntheticCameraRig,
                                                view_color)
from visual_rl_stack.ros.msg_conversions import from_point_cloud2
from visual_rl_stack.ros.msg_conversions import stamp_from_seconds
from visual_rl_stack.ros.topics import DIAGNOSTICS, MULTIVIEW_IMAGE, POINTS, SENSOR_QOS

VIEWS = ['front', 'side', 'wrist']


class Graph:
    """A camera node, a synthetic rig and recorders of everything the node publishes."""

    def __init__(self, context, **params):
        overrides = [Parameter(name, value=value) for name, value in
                     {'diagnostic_period': 0.2, 'sync_timeout': 0.3, **params}.items()]
        self.node = CameraNode(context=context, parameter_overrides=overrides)
        self.probe = Node('camera_node_probe', context=context)
        self.rig = SyntheticCameraRig(self.probe, VIEWS, 128, 128,
                                      with_pose=params.get('use_pose_topics', True))
        self.images, self.clouds, self.diagnostics, self.sent = [], [], [], []
        self.probe.create_subscription(Image, MULTIVIEW_IMAGE, self.images.append, SENSOR_QOS)
        self.probe.create_subscription(PointCloud2, POINTS, self.clouds.append, SENSOR_QOS)
        self.probe.create_subscription(DiagnosticArray, DIAGNOSTICS,
                                       lambda m: self.diagnostics.extend(m.status), 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        assert spin_until(self.executor, self.rig.connected, 15.0), 'rig never matched the node'

    def send(self, stamp_s, alter=None):
        """Publish one frame of all views at ``stamp_s``, after ``alter(messages)`` if given."""
        self.sent.append(stamp_from_seconds(stamp_s))
        messages = self.rig.messages(self.sent[-1])
        if alter is not None:
            alter(messages)
        self.rig.publish(messages)

    def send_until(self, predicate, alter=None, timeout=10.0):
        """Send frames 0.1 s of stamp apart until ``predicate()`` holds (best effort may drop)."""
        deadline = time.monotonic() + timeout
        for stamp_s in np.arange(1.0, 1000.0, 0.1):
            self.send(stamp_s, alter)
            if spin_until(self.executor, predicate, 0.2) or time.monotonic() > deadline:
                break
        return predicate()

    def problems(self, text):
        """Return non-OK statuses whose message contains ``text``."""
        return [s for s in self.diagnostics
                if s.level != DiagnosticStatus.OK and text in s.message]

    def close(self):
        """Destroy the nodes."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.probe.destroy_node()


@pytest.fixture
def graph_factory(ros_context):
    """Build graphs with parameter overrides; clean them up after the test."""
    graphs = []

    def make(**params):
        graphs.append(Graph(ros_context, **params))
        return graphs[-1]

    yield make
    for graph in graphs:
        graph.close()


def test_synced_frames_give_tiled_image_and_cloud_in_workspace(graph_factory):
    graph = graph_factory()
    assert graph.send_until(lambda: graph.images and graph.clouds)
    image = graph.images[0]
    assert (image.width, image.height, image.encoding) == (3 * 128, 128, 'rgb8')
    assert image.header.frame_id == 'multiview'
    assert image.header.stamp in graph.sent, "the image carries its frame's stamp"
    assert graph.clouds[-1].header.stamp in graph.sent
    tiled = image_to_array(image)
    for index in range(3):
        assert tuple(tiled[0, 128 * index]) == view_color(index), 'views in `cameras` order'
    points, colors = from_point_cloud2(graph.clouds[-1])
    assert graph.clouds[-1].header.frame_id == 'world'
    assert len(points) > 500
    assert np.all(points >= np.array([0.2, -0.45, -0.02]) - 1e-5)
    assert np.all(points <= np.array([0.9, 0.45, 0.5]) + 1e-5)
    assert spin_until(graph.executor, lambda: any(
        s.level == DiagnosticStatus.OK and 'published sets/s' in [kv.key for kv in s.values]
        for s in graph.diagnostics), 2.0)


def set_attr(key, **fields):
    """Return an ``alter`` that sets fields of one message."""
    def alter(messages):
        for name, value in fields.items():
            setattr(messages[key], name, value)
    return alter


def all_nan_depth(messages):
    """Replace the side camera's depth with NaN everywhere."""
    depth = messages[('side', 'depth')]
    depth.data = np.full(128 * 128, np.nan, np.float32).tobytes()


@pytest.mark.parametrize('alter, topic, text', [
    (set_attr(('front', 'color'), encoding='yuv422', step=256),
     '/front/color/image_raw', "unsupported encoding 'yuv422'"),
    (set_attr(('wrist', 'camera_info'), width=160),
     '/wrist/color/image_raw', 'image is 128x128 but camera_info says 160x128'),
    (all_nan_depth, '/side/depth/image_raw', '100.0% of depth pixels have no reading'),
])
def test_bad_frames_are_reported_and_dropped(graph_factory, alter, topic, text):
    graph = graph_factory()
    assert graph.send_until(lambda: graph.problems(text), alter)
    status = graph.problems(text)[0]
    assert status.name == f'camera_node: {topic}'
    assert 'frame dropped' in status.message
    assert not graph.images, 'a rejected frame must not be published'
    # The node is still alive and serves good frames.
    assert graph.send_until(lambda: graph.images)


def test_missing_view_is_reported(graph_factory):
    graph = graph_factory()

    def drop_wrist(messages):
        for key in [k for k in messages if k[0] == 'wrist']:
            del messages[key]

    assert graph.send_until(lambda: graph.problems('missing or late views wrist'), drop_wrist)
    status = graph.problems('missing or late views wrist')[0]
    assert status.name == 'camera_node: sync' and status.level == DiagnosticStatus.WARN
    assert {kv.key: kv.value for kv in status.values}['missing_views'] == 'wrist'
    assert not graph.images


def test_static_extrinsics_replace_pose_topics(graph_factory):
    pose = [0.55, 0.0, 0.8, 0.7071068, -0.7071068, 0.0, 0.0]
    graph = graph_factory(use_pose_topics=False, points_views=['side'],
                          **{f'extrinsics.{view}': pose for view in VIEWS})
    assert graph.send_until(lambda: graph.clouds)
    points, _ = from_point_cloud2(graph.clouds[-1])
    assert len(points) > 100


@pytest.mark.parametrize('params, text', [
    ({'sync_tolerance': -0.1}, r'sync_tolerance out of range.*-0\.1'),
    ({'image_width': 'wide'}, 'image_width'),
    ({'points_views': ['rear']}, r"points_views \['rear'\] are not in cameras"),
    ({'workspace_min': [1.0, 0.0, 0.0]}, 'must be below'),
    ({'use_pose_topics': False}, r'extrinsics\.front must be \[x, y, z, qx, qy, qz, qw\]'),
])
def test_invalid_parameters_are_refused(ros_context, params, text):
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    with pytest.raises(ValueError, match=text):
        CameraNode(context=ros_context, parameter_overrides=overrides)


def test_latency_measurement_gets_the_tiled_images_back(ros_context):
    result = measure_multiview_latency(ros_context, frames=10)
    assert result['received'] >= 8, 'best effort on loopback should lose next to nothing'
    assert 0.0 < result['median_ms'] <= result['p99_ms'] < 1000.0


def run_main(*ros_args, interrupt_after=None):
    """Run ``camera_node`` in its own process; return (exit code, output)."""
    env = {**os.environ, 'ROS_DOMAIN_ID': str(next_domain_id()), 'PYTHONUNBUFFERED': '1'}
    process = subprocess.Popen(
        [sys.executable, '-c', 'import sys; from visual_rl_stack.perception.camera_node '
         'import main; sys.exit(main())',
         '--ros-args', *ros_args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    output = []
    if interrupt_after is not None:
        for line in process.stdout:
            output.append(line)
            if interrupt_after in line:
                process.send_signal(signal.SIGINT)
                break
    output.append(process.communicate(timeout=30)[0])
    return process.returncode, ''.join(output)


def test_entry_point_stops_cleanly_on_ctrl_c():
    code, output = run_main('-p', 'use_sim_time:=true', interrupt_after='synchronising')
    assert code == 0, output
    assert 'Traceback' not in output


def test_entry_point_exits_with_the_reason_on_bad_parameters():
    code, output = run_main('-p', 'voxel_size:=-1.0')
    assert code == 1
    assert 'camera_node: invalid parameters' in output and 'voxel_size' in output
    assert 'Traceback' not in output
