"""The sim node as its own process, as ``ros2 run`` starts it, talked to over DDS."""

import os
import signal
import subprocess
import sys

from conftest import spin_until
import pytest
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
from visual_rl_stack.core.image_buffers import image_to_array
from visual_rl_stack.ros import topics


@pytest.fixture
def sim_process(ros_context: Context):
    """Start ``python -m visual_rl_stack.sim.sim_node`` on the test's domain; yield it."""
    # A crash at exit prints the Python stack of every thread (seen once, under a full run).
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_context.get_domain_id()),
               PYTHONFAULTHANDLER='1')
    process = subprocess.Popen(
        [sys.executable, '-m', 'visual_rl_stack.sim.sim_node', '--ros-args',
         '-p', 'mode:=lockstep', '-p', 'task:=reach', '-p', 'cameras:=[front]',
         '-p', 'image_width:=48', '-p', 'image_height:=40'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_separate_process_steps_publishes_and_exits_cleanly_on_sigint(
        ros_context: Context, sim_process: subprocess.Popen):
    node = Node('process_probe', context=ros_context)
    images = []
    node.create_subscription(Image, topics.color_topic('front'), images.append,
                             topics.SENSOR_QOS)
    client = node.create_client(Trigger, topics.SIM_STEP)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        assert spin_until(executor, client.service_is_ready, timeout=30.0), \
            'sim_node did not offer /sim/step'
        future = client.call_async(Trigger.Request())
        assert spin_until(executor, future.done, timeout=10.0)
        assert future.result().success, future.result().message
        assert spin_until(executor, lambda: bool(images), timeout=10.0)
        assert image_to_array(images[-1]).shape == (40, 48, 3)
    finally:
        executor.shutdown()
        node.destroy_node()
    sim_process.send_signal(signal.SIGINT)
    output, _ = sim_process.communicate(timeout=15)
    assert sim_process.returncode == 0, output
    assert 'Traceback' not in output, output


def test_vrl_call_steps_and_resets_and_names_a_missing_service(
        ros_context: Context, sim_process: subprocess.Popen, monkeypatch, capsys):
    from visual_rl_stack.cli.main import main
    monkeypatch.setenv('ROS_DOMAIN_ID', str(ros_context.get_domain_id()))
    assert main(['call', 'step', '--count', '2', '--timeout', '30']) == 0
    assert main(['call', 'reset']) == 0
    assert main(['call', 'activate', '--timeout', '1']) == 1
    out, err = capsys.readouterr()
    assert '/sim/step: ok (2 calls)' in out and '/sim/reset: ok' in out
    assert 'no /policy_node/activate service within 1 s' in err
    sim_process.send_signal(signal.SIGINT)
    output, _ = sim_process.communicate(timeout=15)
    assert 'waiting for /sim/step' in output
