"""
Record serialised messages into a bag: the ROS-free core of the recorder node.

The recorder node (raw DDS subscriptions) and the in-process collector (rclpy
messages serialised in place) both hand their bytes to :class:`BagRecorder`,
so both write the same bags. Closing always writes the metadata, also on
Ctrl-C, because a bag without metadata cannot be played or read.
"""

from pathlib import Path
import threading
from types import TracebackType
from typing import Optional, Sequence

from rclpy.qos import QoSProfile
from rosbags.interfaces import Connection
from visual_rl_stack.ros import topics

from .bags import BagError, is_known_type, open_writer, typestore
from .qos import stack_qos, to_bag_qos

#: Camera views of the default simulator graph.
DEFAULT_VIEWS = ('front', 'side', 'wrist')


def sim_graph_topics(views: Sequence[str] = DEFAULT_VIEWS) -> list[str]:
    """Return the topics an episode of the simulator graph consists of (what to record)."""
    names = [topics.CLOCK, topics.JOINT_STATES, topics.EE_POSE, topics.TASK_INSTRUCTION,
             topics.TASK_SUCCESS, topics.TASK_REWARD, topics.TASK_STATE, topics.ARM_TARGET_POSE,
             topics.ARM_DELTA_TWIST, topics.GRIPPER_COMMAND]
    for view in views:
        names += [topics.color_topic(view), topics.camera_info_topic(view),
                  topics.depth_topic(view), topics.camera_pose_topic(view)]
    return names


class BagRecorder:
    """
    Write (topic, type, CDR bytes, log time) tuples to a new MCAP bag.

    Topics are registered on their first message. Thread-safe: subscription
    callbacks and a shutdown path may call it concurrently. Use it as a context
    manager, or call :meth:`close` yourself.
    """

    def __init__(self, path: Path, custom_data: Optional[dict[str, str]] = None) -> None:
        """Create the bag at ``path`` (which must not exist); ``custom_data`` goes in metadata."""
        self.path = Path(path)
        self._writer = open_writer(self.path)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, str(value))
        self._connections: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self.message_count = 0

    @property
    def closed(self) -> bool:
        """Return whether the bag has been closed, after which writes are refused."""
        return self._writer is None

    @property
    def topics(self) -> dict[str, str]:
        """Return topic -> ROS type name of the topics recorded so far."""
        return {topic: c.msgtype for topic, c in self._connections.items()}

    def write(self, topic: str, msgtype: str, data: bytes, log_time: int,
              qos: Optional[Sequence[QoSProfile]] = None) -> None:
        """
        Store one serialised message logged at ``log_time`` (ns).

        ``qos``: the offered profiles of the topic's publishers, stored with the
        topic on its first message so a player offers them again (default: the
        QoS the stack's nodes publish the topic with). Raises BagError when the
        bag is closed, the type is unknown to the Jazzy type store, or the topic
        was first recorded with another type.
        """
        with self._lock:
            if self._writer is None:
                raise BagError(f'bag {self.path} is closed; cannot write {topic}')
            connection = self._connections.get(topic)
            if connection is None:
                offered = [stack_qos(topic)] if qos is None else qos
                connection = self._add_topic(topic, msgtype, offered)
            elif connection.msgtype != msgtype:
                raise BagError(f'{topic} is recorded as {connection.msgtype}, got {msgtype}')
            self._writer.write(connection, int(log_time), data)
            self.message_count += 1

    def close(self) -> None:
        """Finish the bag (MCAP summary and metadata.yaml); later calls do nothing."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()

    def __enter__(self) -> 'BagRecorder':
        """Return the open recorder."""
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        """Close cleanly whatever happened, Ctrl-C included, so the bag stays readable."""
        self.close()

    def _add_topic(self, topic: str, msgtype: str, qos: Sequence[QoSProfile]) -> Connection:
        """Register ``topic`` with the Jazzy message definition and its offered QoS."""
        if not is_known_type(msgtype):
            raise BagError(f'cannot record {topic}: type {msgtype} is not in the ROS 2 Jazzy '
                           'type store')
        connection = self._writer.add_connection(
            topic, msgtype, typestore=typestore(),
            offered_qos_profiles=[to_bag_qos(profile) for profile in qos])
        self._connections[topic] = connection
        return connection
