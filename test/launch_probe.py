"""
What the launch tests share: the launch file started by the real launch system, and a probe.

A launch test (``launch_testing``, collected by its pytest plugin) includes
one of ``launch/*.launch.py`` through the package's share folder, exactly as
``ros2 launch visual_rl_stack FILE ARGS`` does, on a DDS domain of its own;
:class:`GraphProbe` watches the graph from a private context on that domain;
:func:`assert_clean_exit` checks that launch's SIGINT at the end of the test
ended every process with exit 0 and no traceback.
"""

from pathlib import Path
import time
from typing import Any, Callable, Optional
import unittest

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
import launch_testing
import launch_testing.actions
from rcl_interfaces.srv import GetParameters
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import parameter_value_to_python

#: Seconds a launched graph gets to start: python, torch and pybullet imports on a busy CI
#: machine, and the keypoint model's load.
START_TIMEOUT_S = 90.0


def launch_file_description(launch_file: str, arguments: dict[str, str], domain_id: int,
                            extra: tuple = ()) -> LaunchDescription:
    """Return a test description that starts ``launch_file`` as ``ros2 launch`` would."""
    share = Path(get_package_share_directory('visual_rl_stack'))
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(share / 'launch' / launch_file)),
        launch_arguments=list(arguments.items()))
    return LaunchDescription([
        SetEnvironmentVariable('ROS_DOMAIN_ID', str(domain_id)),
        SetEnvironmentVariable('PYTHONUNBUFFERED', '1'),
        include, *extra, launch_testing.actions.ReadyToTest()])


class GraphProbe:
    """A node on the launched graph's domain that counts messages, reads nodes and parameters."""

    def __init__(self, domain_id: int):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node('launch_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list] = {}

    def close(self) -> None:
        """Destroy the probe and its context."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()

    def watch(self, topic: str, message_type: Any, qos: Any = 10) -> list:
        """Start recording ``topic``; return the list its messages are appended to."""
        received = self.messages.setdefault(topic, [])
        self.node.create_subscription(message_type, topic, received.append, qos)
        return received

    def spin_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``done()`` holds or ``timeout`` seconds pass; return ``done()``."""
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        return done()

    def spin_for(self, seconds: float) -> None:
        """Spin for ``seconds`` of wall time."""
        self.spin_until(lambda: False, seconds)

    def node_names(self) -> set[str]:
        """Return the names of the nodes on the graph (the probe's own excluded)."""
        return set(self.node.get_node_names()) - {self.node.get_name()}

    def wait_for_nodes(self, names: set[str], timeout: float = START_TIMEOUT_S) -> set[str]:
        """Wait until every node in ``names`` is on the graph; return the names seen."""
        self.spin_until(lambda: names <= self.node_names(), timeout)
        return self.node_names()

    def call(self, service_type: Any, name: str, request: Any, timeout: float = 30.0) -> Any:
        """Call a service once; return its response (None when it does not answer)."""
        client = self.node.create_client(service_type, name)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                return None
            future = client.call_async(request)
            return future.result() if self.spin_until(future.done, timeout) else None
        finally:
            self.node.destroy_client(client)

    def parameters(self, node: str, names: list[str],
                   timeout: float = 20.0) -> Optional[dict[str, Any]]:
        """Return ``node``'s current values of ``names`` (None when it does not answer)."""
        response = self.call(GetParameters, f'/{node}/get_parameters',
                             GetParameters.Request(names=names), timeout)
        return None if response is None else {
            name: parameter_value_to_python(value) for name, value in zip(names, response.values)}


def stamps(messages: list) -> list[float]:
    """Return the header stamps of ``messages`` in seconds."""
    return [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in messages]


def median_period(messages: list) -> float:
    """Return the median spacing of ``messages``' header stamps (sim time for the sim graph)."""
    times = sorted(stamps(messages))
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return gaps[len(gaps) // 2]


def assert_clean_exit(proc_info, proc_output) -> None:
    """Check that every launched process exited 0 and printed no traceback."""
    launch_testing.asserts.assertExitCodes(proc_info)
    for process in proc_output.processes():
        text = ''.join(event.text.decode(errors='replace') for event in proc_output[process])
        assert 'Traceback' not in text, f'{process.process_details["name"]}:\n{text}'


class GraphTest(unittest.TestCase):
    """A test against the launched graph, with a :class:`GraphProbe` on ``domain_id``."""

    domain_id: int

    def setUp(self):
        self.probe = GraphProbe(self.domain_id)

    def tearDown(self):
        self.probe.close()


@launch_testing.post_shutdown_test()
class TestCleanExit(unittest.TestCase):
    """Launch's SIGINT (Ctrl-C) ends every process with exit 0 and no traceback."""

    def test_every_process_exits_cleanly(self, proc_info, proc_output):
        assert_clean_exit(proc_info, proc_output)
