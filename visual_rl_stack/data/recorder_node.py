"""
ROS 2 node ``recorder``: record chosen topics to an MCAP bag, like ``ros2 bag record``.

Subscriptions are raw (``raw=True``): the node never deserialises, it stores
the bytes DDS delivered. Topic types come from the graph, and a periodic check
picks up topics that appear after start. Whatever ends the node (Ctrl-C,
shutdown, a duration) the bag is closed and readable.
"""

from functools import partial
from pathlib import Path
import sys
import time
from typing import Any, Optional

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from visual_rl_stack.ros.bringup import run_node_until
from visual_rl_stack.ros.node_params import declare_params, ParamSpec
from visual_rl_stack.ros.shutdown import ending_on_shutdown, init_process_context

from .bags import BagError, is_known_type, message_class
from .recorder import BagRecorder, sim_graph_topics

#: Queue depth of every recording subscription (deep, so bursts of images are not dropped).
RECORD_DEPTH = 100

PARAMS = {
    'topics': ParamSpec(sim_graph_topics(), 'Topics to record (they may appear later).'),
    'output': ParamSpec('', 'Folder of the bag to create (must not exist).', read_only=True),
    'discovery_period': ParamSpec(0.5, 'Seconds between checks for newly appeared topics.',
                                  low=0.05, high=60.0),
}


class BagRecorderNode(Node):
    """Subscribe raw to the wanted topics as they appear and write every message to a bag."""

    def __init__(self, **kwargs: Any) -> None:
        """
        Declare parameters, create the bag and start discovering topics.

        ``kwargs`` go to ``rclpy.node.Node`` (context, parameter_overrides, ...).
        """
        super().__init__('recorder', **kwargs)
        values = declare_params(self, PARAMS)
        if not values['output']:
            raise ValueError('recorder: parameter output (the bag folder to create) is required')
        self.wanted = set(values['topics'])
        self.recorder = BagRecorder(Path(values['output']).expanduser())
        self._skipped: set[str] = set()
        self._recording: dict[str, Any] = {}
        self.discover()
        self.create_timer(values['discovery_period'], self.discover)
        self.get_logger().info(f'recording {sorted(self.wanted)} to {self.recorder.path}')

    @property
    def recorded_topics(self) -> set[str]:
        """
        Return the topics subscribed to for recording so far.

        Not ``self.subscriptions``: with ``use_sim_time`` the node's time source
        subscribes to ``/clock`` too, and that subscription records nothing.
        """
        return set(self._recording)

    def discover(self) -> None:
        """Subscribe to wanted topics that now have a publisher; log what was added, once."""
        recorded = self.recorded_topics
        added = []
        for topic, types in self.get_topic_names_and_types():
            if topic not in self.wanted or topic in recorded or topic in self._skipped:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            msgtype = types[0]
            if len(types) > 1 or not is_known_type(msgtype):
                self.get_logger().error(f'not recording {topic}: type(s) {types} are ambiguous '
                                        'or unknown to the ROS 2 Jazzy type store')
                self._skipped.add(topic)
                continue
            offered = [p.qos_profile for p in publishers]
            self._recording[topic] = self.create_subscription(
                message_class(msgtype), topic, partial(self._store, topic, msgtype, offered),
                matching_qos(publishers), raw=True)
            self.get_logger().debug(f'recording {topic} ({msgtype})')
            added.append(topic)
        if added:
            shown = ', '.join(sorted(added)[:4]) + (', ...' if len(added) > 4 else '')
            self.get_logger().info(f'recording {len(self._recording)} of {len(self.wanted)} '
                                   f'topics (+{len(added)}: {shown})')

    def close(self) -> None:
        """Close the bag (idempotent); messages arriving afterwards are dropped."""
        self.recorder.close()

    def destroy_node(self) -> None:
        """Close the bag, then destroy the node."""
        self.close()
        super().destroy_node()

    def _store(self, topic: str, msgtype: str, offered: list, data: bytes) -> None:
        """Write one raw message, logged at the node's clock (sim time with use_sim_time)."""
        try:
            self.recorder.write(topic, msgtype, data, self.get_clock().now().nanoseconds,
                                offered)
        except BagError:
            # A message racing close() on another executor thread is dropped quietly.
            if not self.recorder.closed:
                raise


def matching_qos(publishers: list) -> QoSProfile:
    """Return a QoS that matches every publisher (and keeps latched messages)."""
    profiles = [p.qos_profile for p in publishers]
    best_effort = any(p.reliability == ReliabilityPolicy.BEST_EFFORT for p in profiles)
    latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    return QoSProfile(
        depth=RECORD_DEPTH, history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def spin_until_done(node: BagRecorderNode, context: Context,
                    duration: Optional[float] = None) -> None:
    """Spin ``node`` until Ctrl-C, context shutdown or ``duration`` seconds; then close the bag."""
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = None if duration is None else time.monotonic() + duration
    try:
        with ending_on_shutdown(context):
            while context.ok() and (deadline is None or time.monotonic() < deadline):
                executor.spin_once(timeout_sec=0.1)
    finally:
        node.close()
        executor.shutdown()


def record_main(topics: list[str], output: Path, duration: Optional[float] = None,
                context: Optional[Context] = None) -> Path:
    """
    Record ``topics`` (the sim graph's if empty) to the bag ``output``; return its path.

    Runs until Ctrl-C or ``duration`` seconds. Without ``context`` a private one
    is initialised (Ctrl-C and SIGTERM end it cleanly) and shut down afterwards.
    """
    own_context = context is None
    if own_context:
        context = init_process_context()
    overrides = [Parameter('output', value=str(output))]
    if topics:
        overrides.append(Parameter('topics', value=list(topics)))
    try:
        node = BagRecorderNode(context=context, parameter_overrides=overrides)
        try:
            spin_until_done(node, context, duration)
            count = node.recorder.message_count
        finally:
            node.destroy_node()
    finally:
        if own_context:
            context.try_shutdown()
    print(f'recorded {count} messages to {output}')
    return Path(output)


def main(args: Optional[list[str]] = None) -> int:
    """Run the recorder node (``ros2 run visual_rl_stack recorder_node --ros-args ...``)."""
    return run_node_until(lambda context: BagRecorderNode(context=context), spin_until_done,
                          args)


if __name__ == '__main__':
    sys.exit(main())
