"""The recorder node over real DDS: raw recording, late topics, Ctrl-C and SIGTERM safety."""

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String
from visual_rl_stack.data.bags import deserialize, read_messages
from visual_rl_stack.data.recorder_node import BagRecorderNode
from visual_rl_stack.ros import msg_conversions as mc
from visual_rl_stack.ros import topics


def make_image(i: int) -> Image:
    """Return a small distinct image."""
    array = np.full((6, 8, 3), i, dtype=np.uint8)
    return mc.array_to_image(array, 'rgb8', mc.stamp_from_seconds(i), 'cam_optical_frame')


def test_records_raw_messages_and_picks_up_late_topics(ros_context, spin, tmp_path):
    bag = tmp_path / 'bag'
    talker = Node('talker', context=ros_context)
    image_pub = talker.create_publisher(Image, '/cam/color/image_raw', topics.SENSOR_QOS)
    recorder = BagRecorderNode(context=ros_context, parameter_overrides=[
        Parameter('output', value=str(bag)),
        Parameter('topics', value=['/cam/color/image_raw', '/late']),
        Parameter('discovery_period', value=0.1)])
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(talker)
    executor.add_node(recorder)
    assert spin(executor, lambda: '/cam/color/image_raw' in recorder.recorded_topics)
    late_pub = talker.create_publisher(String, '/late', topics.RELIABLE_QOS)
    assert spin(executor, lambda: '/late' in recorder.recorded_topics)
    spin(executor, lambda: late_pub.get_subscription_count() > 0
         and image_pub.get_subscription_count() > 0)
    sent = [make_image(i) for i in range(5)]
    for image in sent:
        image_pub.publish(image)
        late_pub.publish(String(data=f'late {image.header.stamp.sec}'))
        executor.spin_once(timeout_sec=0.05)
    assert spin(executor, lambda: recorder.recorder.message_count >= 10)
    recorder.destroy_node()
    talker.destroy_node()
    executor.shutdown()

    stored = list(read_messages(bag))
    images = [deserialize(m) for m in stored if m.topic == '/cam/color/image_raw']
    strings = [deserialize(m).data for m in stored if m.topic == '/late']
    assert images == sent
    assert strings == [f'late {i}' for i in range(5)]


def ignore_sigint() -> None:
    """Start a child as a shell starts a background job (``&``): SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize('stop_signal, preexec', [
    (signal.SIGINT, None), (signal.SIGINT, ignore_sigint), (signal.SIGTERM, None)],
    ids=['ctrl-c', 'ctrl-c-in-background', 'sigterm'])
def test_stopping_the_recorder_leaves_a_readable_bag(ros_context, spin, tmp_path,
                                                     stop_signal, preexec):
    bag = tmp_path / 'bag'
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_context.get_domain_id()),
               PYTHONPATH=os.pathsep.join(sys.path))
    script = ('from pathlib import Path; from visual_rl_stack.data.recorder_node import '
              f'record_main; record_main(["/chatter"], Path({str(bag)!r}))')
    process = subprocess.Popen([sys.executable, '-c', script], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=preexec)
    talker = Node('talker', context=ros_context)
    pub = talker.create_publisher(String, '/chatter', topics.RELIABLE_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(talker)
    try:
        assert spin(executor, lambda: pub.get_subscription_count() > 0, timeout=30.0)
        for i in range(10):
            pub.publish(String(data=str(i)))
            executor.spin_once(timeout_sec=0.05)
        # Delivered (reliable QoS acks), then time for the recorder to take them from its
        # queue, also on a loaded machine: Ctrl-C stops it before it takes any still queued.
        assert pub.wait_for_all_acked(Duration(seconds=30))
        time.sleep(2.0)
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        talker.destroy_node()
        executor.shutdown()
    assert process.returncode == 0, output
    assert (bag / 'metadata.yaml').is_file(), output
    assert [deserialize(m).data for m in read_messages(Path(bag))] == [str(i) for i in range(10)]
