"""The bag player over real DDS: round trip, QoS, /clock, lockstep and bad bags."""

from collections import Counter
import os
from pathlib import Path
import subprocess
import sys

from conftest import next_domain_id, spin_until
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from visual_rl_stack.data.bags import (bag_connections, BagError, find_bags, read_messages,
                                       serialize, typestore)
from visual_rl_stack.data.collect import collect
from visual_rl_stack.data.playback import Pacer, plan_playback, PlaybackCursor
from visual_rl_stack.data.player_node import BagPlayerNode
from visual_rl_stack.data.recorder_node import BagRecorderNode
from visual_rl_stack.ros import topics


@pytest.fixture(scope='module')
def episode(tmp_path_factory) -> Path:
    """Return one collected lift episode bag (front camera, 32x24 px)."""
    out = collect('lift', 1, tmp_path_factory.mktemp('bags'), seed_start=4, views=('front',),
                  width=32, height=24)
    return find_bags(out)[0]


def _player(context, bag, **params) -> BagPlayerNode:
    values = {'bags': [str(bag)], 'delay': 0.3, **params}
    return BagPlayerNode(context=context,
                         parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def _recorder(context, out: Path) -> BagRecorderNode:
    """Return a recorder of every topic into ``out`` that discovers new topics quickly."""
    return BagRecorderNode(context=context, parameter_overrides=[
        Parameter('output', value=str(out)), Parameter('discovery_period', value=0.05)])


def _play_to_the_end(executor, player: BagPlayerNode, recorder: BagRecorderNode,
                     episode: Path) -> list:
    """Spin until the player finished and the recorder has every message; return the bag's."""
    assert spin_until(executor, lambda: player.finished, timeout=60.0)
    original = list(read_messages(episode))
    assert spin_until(executor, lambda: recorder.recorder.message_count >= len(original), 10.0)
    recorder.destroy_node()
    player.destroy_node()
    return original


def _write_bag(path: Path, messages, plugin=StoragePlugin.MCAP, compression=None) -> Path:
    """Write (topic, msg, log_time) with rosbags, storing no QoS profiles (like old bags)."""
    writer = Writer(path, version=8, storage_plugin=plugin)
    if compression is not None:
        writer.set_compression(*compression)
    writer.open()
    connections = {}
    for topic, msg, log_time in messages:
        msgtype = f'{type(msg).__module__.split(".")[0]}/msg/{type(msg).__name__}'
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore())
        writer.write(connections[topic], log_time, serialize(msg))
    writer.close()
    return path


def _joints(stamp_ns: int) -> JointState:
    msg = JointState(name=['a'], position=[stamp_ns * 1e-9])
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def test_record_play_record_gives_back_the_same_messages(ros_context, episode, tmp_path):
    back = tmp_path / 'back'
    recorder = _recorder(ros_context, back)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(recorder)
    player = _player(ros_context, episode, rate=2.0, delay=1.0)
    executor.add_node(player)
    original = _play_to_the_end(executor, player, recorder, episode)
    replayed = list(read_messages(back))
    assert Counter(m.topic for m in replayed) == Counter(m.topic for m in original)
    for topic in {m.topic for m in original}:
        assert [m.data for m in replayed if m.topic == topic] == \
            [m.data for m in original if m.topic == topic], topic
    # Recorded timing, halved: the played stream spans the recording's duration / rate.
    times = np.array([m.log_time for m in replayed if m.topic == topics.JOINT_STATES])
    recorded = np.array([m.log_time for m in original if m.topic == topics.JOINT_STATES])
    assert (times[-1] - times[0]) >= 0.8 * (recorded[-1] - recorded[0]) / 2.0
    # The recorder stored the player's offered QoS: best-effort images, latched instruction.
    stored = {topic: qos for topic, _, qos, _ in bag_connections(back)}
    assert stored[topics.color_topic('front')][0].reliability.name == 'BEST_EFFORT'
    assert stored[topics.TASK_INSTRUCTION][0].durability.name == 'TRANSIENT_LOCAL'


def test_a_recorder_started_after_the_player_gets_everything_when_it_waits(
        ros_context, episode, tmp_path):
    executor = SingleThreadedExecutor(context=ros_context)
    player = _player(ros_context, episode, delay=0.3, wait_for_subscribers=30.0)
    executor.add_node(player)
    spin_until(executor, lambda: False, timeout=1.5)  # the recorder comes later
    assert player.status.published == 0
    recorder = _recorder(ros_context, tmp_path / 'late')
    executor.add_node(recorder)
    original = _play_to_the_end(executor, player, recorder, episode)
    assert Counter(m.topic for m in read_messages(tmp_path / 'late')) == \
        Counter(m.topic for m in original)


def test_player_offers_the_recorded_qos_and_falls_back_to_the_stacks(ros_context, episode,
                                                                     tmp_path):
    plan = plan_playback([episode])
    assert plan.topics[topics.color_topic('front')].qos.reliability == \
        ReliabilityPolicy.BEST_EFFORT
    assert plan.topics[topics.TASK_INSTRUCTION].qos.durability == \
        DurabilityPolicy.TRANSIENT_LOCAL
    assert plan.topics[topics.JOINT_STATES].qos.reliability == ReliabilityPolicy.RELIABLE
    bare = _write_bag(tmp_path / 'bare', [(topics.TASK_INSTRUCTION, String(data='x'), 0),
                                          (topics.color_topic('side'), String(data='y'), 1)])
    assert all(not qos for _, _, qos, _ in bag_connections(bare))
    plan = plan_playback([bare])
    assert plan.topics[topics.TASK_INSTRUCTION].qos.durability == \
        DurabilityPolicy.TRANSIENT_LOCAL
    assert plan.topics[topics.color_topic('side')].qos.reliability == \
        ReliabilityPolicy.BEST_EFFORT
    # A latched instruction reaches a subscriber that joins after it was played.
    player = _player(ros_context, bare, delay=0.0)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(player)
    assert spin_until(executor, lambda: player.finished, timeout=10.0)
    got = []
    listener = player.create_subscription(String, topics.TASK_INSTRUCTION, got.append,
                                          topics.LATCHED_QOS)
    assert spin_until(executor, lambda: got, timeout=10.0)
    assert got[0].data == 'x'
    player.destroy_subscription(listener)
    player.destroy_node()


def test_clock_comes_from_the_recording_only_when_the_bag_has_none(ros_context, tmp_path):
    stamps = [0, 100_000_000, 250_000_000]
    bag = _write_bag(tmp_path / 'noclock', [(topics.JOINT_STATES, _joints(t), t) for t in stamps])
    player = _player(ros_context, bag, clock=True, start_paused=True, delay=0.0)
    clocks, joints = [], []
    player.create_subscription(Clock, topics.CLOCK, clocks.append, QoSProfile(depth=100))
    player.create_subscription(JointState, topics.JOINT_STATES,
                               lambda m: joints.append(len(clocks)), topics.RELIABLE_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(player)
    assert spin_until(executor, lambda: player.publishers_[topics.CLOCK]
                      .get_subscription_count() > 0, 10.0)
    for _ in stamps:
        assert len(player.play_frame()) == 1
        assert spin_until(executor, lambda: len(joints) == player.status.frames, 10.0)
    times = [c.clock.sec * 1_000_000_000 + c.clock.nanosec for c in clocks]
    assert times == stamps
    assert joints == [1, 2, 3]  # each step's clock arrived before its joint state
    player.destroy_node()
    with_clock = _write_bag(tmp_path / 'clock', [
        (topics.CLOCK, Clock(), 0), (topics.JOINT_STATES, _joints(0), 0)])
    plan = plan_playback([with_clock], clock=True)
    assert not plan.make_clock and topics.CLOCK in plan.topics


def test_lockstep_steps_one_control_step_per_call(ros_context, episode):
    player = _player(ros_context, episode, start_paused=True, delay=0.0)
    client = player.create_client(Trigger, '/player/step')
    next_client = player.create_client(Trigger, '/player/play_next')
    pause = player.create_client(SetBool, '/player/pause')
    got = []
    player.create_subscription(JointState, topics.JOINT_STATES, got.append, topics.RELIABLE_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(player)
    assert spin_until(executor, lambda: client.service_is_ready()
                      and player.publishers_[topics.JOINT_STATES].get_subscription_count(), 10.0)

    def call(which, request):
        future = which.call_async(request)
        assert spin_until(executor, future.done, 10.0)
        return future.result()

    stamps = sorted({m.log_time for m in read_messages(episode, [topics.JOINT_STATES])})
    for k in range(3):
        response = call(client, Trigger.Request())
        assert response.success, response.message
        assert spin_until(executor, lambda: len(got) == k + 1, 10.0)
        assert not spin_until(executor, lambda: len(got) > k + 1, 0.3)  # nothing more
        stamp = got[-1].header.stamp
        assert stamp.sec * 1_000_000_000 + stamp.nanosec == stamps[k]
    assert call(next_client, Trigger.Request()).success  # one message of the next step
    assert call(pause, SetBool.Request(data=False)).success
    refused = call(client, Trigger.Request())
    assert not refused.success and 'not paused' in refused.message
    assert spin_until(executor, lambda: player.finished, 30.0)
    assert len(got) == len(stamps)
    player.destroy_node()


def test_frames_hold_one_step_and_the_clock_of_the_next_step_stays_with_it(episode):
    cursor = PlaybackCursor(plan_playback([episode]))
    frames = []
    while frame := cursor.take_frame():
        frames.append(frame)
    assert all(sum(m.topic == topics.JOINT_STATES for m in f) == 1 for f in frames)
    step_times = [next(m.log_time for m in f if m.topic == topics.JOINT_STATES) for f in frames]
    assert all(m.log_time == t for f, t in zip(frames[1:], step_times[1:]) for m in f)
    assert sum(len(f) for f in frames) == len(list(read_messages(episode)))


def test_pacer_waits_by_log_time_and_not_while_paused():
    now = [100.0]
    pacer = Pacer(rate=2.0, clock=lambda: now[0])
    assert pacer.delay(0) == 0.0
    assert pacer.delay(1_000_000_000) == pytest.approx(0.5)
    pacer.pause()
    now[0] += 10.0
    assert pacer.delay(1_000_000_000) == pytest.approx(0.5)
    pacer.resume()
    now[0] += 0.25
    assert pacer.delay(1_000_000_000) == pytest.approx(0.25)
    with pytest.raises(ValueError, match='rate'):
        Pacer(rate=0.0)


def test_unknown_types_are_skipped_by_name_and_the_rest_plays(tmp_path):
    path = tmp_path / 'mixed'
    writer = Writer(path, version=8)
    writer.open()
    widget = writer.add_connection('/widget', 'acme_msgs/msg/Widget', msgdef='int32 size',
                                   rihs01='RIHS01_' + '0' * 64)
    joints = writer.add_connection(topics.JOINT_STATES, 'sensor_msgs/msg/JointState',
                                   typestore=typestore())
    writer.write(widget, 0, b'\x00\x01\x00\x00\x05\x00\x00\x00')
    writer.write(joints, 1, serialize(_joints(1)))
    writer.close()
    plan = plan_playback([path])
    assert list(plan.topics) == [topics.JOINT_STATES]
    assert 'acme_msgs/msg/Widget' in plan.skipped['/widget']
    assert any('/widget' in note for note in plan.notes())
    frames = PlaybackCursor(plan).take_frame()
    assert [m.topic for m in frames] == [topics.JOINT_STATES]


def test_sqlite3_and_compressed_bags_play(tmp_path):
    messages = [(topics.JOINT_STATES, _joints(t), t) for t in (0, 10, 20)]
    sqlite = _write_bag(tmp_path / 'sqlite', messages, plugin=StoragePlugin.SQLITE3)
    zstd = _write_bag(tmp_path / 'zstd', messages,
                      compression=(CompressionMode.MESSAGE, CompressionFormat.ZSTD))
    for bag in (sqlite, zstd):
        cursor = PlaybackCursor(plan_playback([bag]))
        assert [len(cursor.take_frame()) for _ in range(4)] == [1, 1, 1, 0]


def test_a_bag_that_breaks_off_is_reported_and_the_next_bag_plays(episode, tmp_path):
    broken = tmp_path / 'broken'
    broken.mkdir()
    for item in episode.iterdir():
        data = item.read_bytes()
        (broken / item.name).write_bytes(data[:len(data) // 2] if item.suffix == '.mcap'
                                         else data)
    fine = _write_bag(tmp_path / 'fine', [(topics.JOINT_STATES, _joints(5), 5)])
    errors = []
    try:
        plan = plan_playback([broken, fine])
    except BagError:
        pytest.fail('a broken bag must not stop the plan')
    cursor = PlaybackCursor(plan, errors.append)
    played = []
    while (message := cursor.take()) is not None:
        played.append(message)
    assert played and played[-1].data == serialize(_joints(5))
    assert (errors and 'broken' in errors[0]) or broken in plan.unreadable
    with pytest.raises(BagError, match='nothing to play'):
        plan_playback([broken], topics=['/nothing'])


def test_player_node_process_plays_to_the_end_and_refuses_bad_parameters(episode, tmp_path):
    env = {**os.environ, 'ROS_DOMAIN_ID': str(next_domain_id())}
    done = subprocess.run([sys.executable, '-m', 'visual_rl_stack.data.player_node', '--ros-args',
                           '-p', f'bags:=[{episode}]', '-p', 'rate:=10.0', '-p', 'delay:=0.0'],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run([sys.executable, '-m', 'visual_rl_stack.cli', 'play',
                              str(tmp_path / 'nope')], env=env, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and 'nope' in missing.stderr


def test_loop_starts_over_and_topics_limit_what_is_played(ros_context, tmp_path):
    stamps = [0, 100_000_000]
    bag = _write_bag(tmp_path / 'two', [(topics.JOINT_STATES, _joints(t), t) for t in stamps]
                     + [(topics.TASK_INSTRUCTION, String(data='x'), 5)])
    player = _player(ros_context, bag, loop=True, start_paused=True,
                     topics=[topics.JOINT_STATES, '/not/there'])
    try:
        assert set(player.plan.topics) == {topics.JOINT_STATES}
        assert 'no bag holds it' in player.plan.skipped['/not/there']
        played = [player.play_frame()[0].log_time for _ in range(5)]
        assert played == [0, 100_000_000, 0, 100_000_000, 0]
        assert player.status.passes == 2 and not player.finished
    finally:
        player.destroy_node()
