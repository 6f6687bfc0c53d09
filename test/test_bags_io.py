"""Bag writing and reading: message round trips, metadata, damaged bags, bad folders."""

from pathlib import Path

from geometry_msgs.msg import TwistStamped
import numpy as np
import pytest
from rosbags.typesys.stores.ros2_jazzy import sensor_msgs__msg__Image
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from visual_rl_stack.core.image_buffers import image_to_array
from visual_rl_stack.data.bags import (BagError, decode, deserialize, find_bags, read_messages,
                                       ros_type_name, serialize)
from visual_rl_stack.data.dataset import BagDataset
from visual_rl_stack.data.recorder import BagRecorder
from visual_rl_stack.ros import msg_conversions as mc
import yaml


def sample_messages() -> list:
    """Return (topic, message) pairs covering every type the stack records."""
    stamp = mc.stamp_from_seconds(1.25)
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    depth = np.linspace(0.1, 2.0, 20, dtype=np.float32).reshape(4, 5)
    twist = TwistStamped()
    twist.header.stamp = stamp
    twist.twist.linear.x, twist.twist.angular.z = 0.1, -0.2
    return [
        ('/cam/color/image_raw', mc.array_to_image(rgb, 'rgb8', stamp, 'cam_optical_frame')),
        ('/cam/depth/image_raw', mc.array_to_image(depth, '32FC1', stamp, 'cam_optical_frame')),
        ('/cam/color/camera_info', mc.make_camera_info(np.eye(3), 5, 4, stamp, 'cam')),
        ('/joint_states', mc.make_joint_state(['a', 'b'], [1, 2], [3, 4], [5, 6], stamp)),
        ('/joint_states_no_effort', JointState(name=['a'], position=[1.0])),
        ('/ee_pose', mc.make_pose_stamped([1, 2, 3], [0, 0, 0, 1], stamp, 'world')),
        ('/arm/delta_twist', twist),
        ('/gripper/command', Float64(data=0.04)),
        ('/task/state', mc.make_labelled_array({'cube': np.array([1.0, 2.0, 3.0]),
                                                'goal': np.array([4.0])})),
    ]


def write_bag(path: Path, messages: list) -> None:
    """Write ``messages`` at increasing log times."""
    with BagRecorder(path) as recorder:
        for i, (topic, msg) in enumerate(messages):
            recorder.write(topic, ros_type_name(msg), serialize(msg), 1000 + i)


def test_round_trip_of_every_message_type(tmp_path):
    messages = sample_messages()
    write_bag(tmp_path / 'bag', messages)
    stored = list(read_messages(tmp_path / 'bag'))
    assert [m.topic for m in stored] == [t for t, _ in messages]
    assert [m.log_time for m in stored] == [1000 + i for i in range(len(messages))]
    for (_, original), message in zip(messages, stored):
        assert deserialize(message) == original
        decode(message)  # the fast reader accepts rclpy's bytes, padding included
    image = decode(stored[0])
    assert isinstance(image, sensor_msgs__msg__Image)
    np.testing.assert_array_equal(image_to_array(image), image_to_array(messages[0][1]))
    fields = mc.labelled_array_to_dict(decode(stored[-1]))
    np.testing.assert_array_equal(fields['cube'], [1.0, 2.0, 3.0])
    assert decode(stored[4]).effort.size == 0


def test_metadata_is_version_8_mcap(tmp_path):
    write_bag(tmp_path / 'bag', sample_messages()[:2])
    info = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    info = info['rosbag2_bagfile_information']
    assert info['version'] == 8
    assert info['storage_identifier'] == 'mcap'
    assert info['relative_file_paths'][0].endswith('.mcap')
    assert info['message_count'] == 2


def test_topic_filter(tmp_path):
    write_bag(tmp_path / 'bag', sample_messages())
    assert [m.topic for m in read_messages(tmp_path / 'bag', ['/ee_pose'])] == ['/ee_pose']


def test_truncated_bag_is_a_clear_error(tmp_path):
    write_bag(tmp_path / 'bag', sample_messages() * 20)
    mcap = next((tmp_path / 'bag').glob('*.mcap'))
    data = mcap.read_bytes()
    mcap.write_bytes(data[:len(data) // 2])
    with pytest.raises(BagError, match=r'bag .*bag is truncated or corrupt'):
        list(read_messages(tmp_path / 'bag'))


def test_recorder_refuses_existing_bag_and_writes_after_close(tmp_path):
    write_bag(tmp_path / 'bag', sample_messages()[:1])
    with pytest.raises(BagError, match='exists'):
        BagRecorder(tmp_path / 'bag')
    recorder = BagRecorder(tmp_path / 'other')
    recorder.close()
    with pytest.raises(BagError, match='closed'):
        recorder.write('/x', 'std_msgs/msg/Float64', serialize(Float64()), 0)


def test_recorder_refuses_unknown_type_and_type_change(tmp_path):
    with BagRecorder(tmp_path / 'bag') as recorder:
        with pytest.raises(BagError, match='type store'):
            recorder.write('/x', 'nope_msgs/msg/Nope', b'', 0)
        recorder.write('/x', 'std_msgs/msg/Float64', serialize(Float64()), 0)
        with pytest.raises(BagError, match='recorded as'):
            recorder.write('/x', 'std_msgs/msg/Bool', b'', 1)


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BagError, match='no rosbag2 bags'):
        find_bags(tmp_path)
    with pytest.raises(BagError, match='no rosbag2 bags'):
        BagDataset(tmp_path)
    with pytest.raises(BagError, match='not a folder'):
        BagDataset(tmp_path / 'missing')


def test_a_file_of_a_bag_names_the_bag_folder(tmp_path):
    write_bag(tmp_path / 'bag', sample_messages())
    inner = next(p for p in (tmp_path / 'bag').iterdir() if p.suffix == '.mcap')
    with pytest.raises(BagError, match=f'pass the bag folder {tmp_path / "bag"}'):
        find_bags(inner)
