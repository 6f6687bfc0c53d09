"""The graph composed in one process: it comes up, publishes, and shuts down cleanly."""

import argparse
import importlib

from conftest import spin_until
import pytest
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from visual_rl_stack.cli.commands.bringup import add_arguments, main, parse_param
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import GraphRunner
from visual_rl_stack.ros.graph import graph

SMALL_SIM = {
    'sim_node': {'mode': 'realtime', 'realtime_factor': 2.0, 'cameras': ['front', 'side'],
                 'image_width': 64, 'image_height': 48},
    'camera_node': {'cameras': ['front', 'side'], 'image_width': 32, 'image_height': 32},
}


def camera_node_available() -> bool:
    """Return whether the camera node module imports."""
    try:
        importlib.import_module(graph('sim').node('camera_node').factory.split(':')[0])
    except ImportError:
        return False
    return True


def test_sim_graph_in_one_process_publishes_clock_and_multiview(ros_context: Context):
    probe = Node('bringup_probe', context=ros_context)
    received = {'clock': [], 'multiview': []}
    probe.create_subscription(Clock, topics.CLOCK, received['clock'].append, topics.RELIABLE_QOS)
    probe.create_subscription(Image, topics.MULTIVIEW_IMAGE, received['multiview'].append,
                              topics.SENSOR_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(probe)
    if not camera_node_available():
        pytest.skip('visual_rl_stack.perception.camera_node does not import')
    try:
        with GraphRunner('sim', SMALL_SIM, context=ros_context) as runner:
            assert set(runner.nodes) == {'sim_node', 'camera_node', 'affordance_node',
                                         'world_model_node'}
            assert runner.nodes['camera_node'].get_parameter('use_sim_time').value
            assert spin_until(executor, lambda: len(received['clock']) >= 3, timeout=20.0)
            assert spin_until(executor, lambda: bool(received['multiview']), timeout=20.0)
        assert not runner.nodes
        tiled = received['multiview'][-1]
        assert (tiled.height, tiled.width) == (32, 64)
    finally:
        executor.shutdown()
        probe.destroy_node()


def test_unknown_parameter_is_refused_and_nothing_is_left_running(ros_context: Context):
    runner = GraphRunner('sim', {'sim_node': {'no_such_parameter': 1}}, context=ros_context)
    with pytest.raises(ValueError, match='no_such_parameter'):
        runner.start()
    assert not runner.nodes and runner.executor is None


def test_cli_reports_bad_overrides_with_exit_status_1(capsys: pytest.CaptureFixture):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(['real', '--task', 'push', '--duration', '0.1'])
    assert main(args) == 1
    assert "not in graph 'real'" in capsys.readouterr().err
    with pytest.raises(argparse.ArgumentTypeError, match='NODE.PARAM=VALUE'):
        parse_param('seed=3')
    assert parse_param('sim_node.cameras=[front]') == ('sim_node', 'cameras', ['front'])
