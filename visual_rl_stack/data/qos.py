"""
QoS profiles as rosbag2 stores them, and the profile to play a recorded topic with.

``ros2 bag record`` stores each publisher's offered QoS in the bag metadata
and ``ros2 bag play`` offers it again, so that a best-effort camera stream
stays best effort and a latched instruction reaches late subscribers. Bags
without stored profiles (older ones of this stack, or hand-made ones) fall
back to the QoS the stack's own nodes publish that topic with.
"""

from typing import Sequence

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from visual_rl_stack.ros import topics

#: Depth of a played topic whose stored profile says KEEP_ALL or depth 0 (a player sends
#: messages one at a time, so a deep queue only hides a subscriber that does not keep up).
PLAY_DEPTH = 100
_NO_TIME = QosTime(0, 0)
#: rosbags' enum names for rclpy's policies (both follow rmw's numbering for the common ones).
_RELIABILITY = {ReliabilityPolicy.RELIABLE: QosReliability.RELIABLE,
                ReliabilityPolicy.BEST_EFFORT: QosReliability.BEST_EFFORT}
_DURABILITY = {DurabilityPolicy.TRANSIENT_LOCAL: QosDurability.TRANSIENT_LOCAL,
               DurabilityPolicy.VOLATILE: QosDurability.VOLATILE}


def stack_qos(topic: str) -> QoSProfile:
    """
    Return the QoS the stack's nodes publish ``topic`` with (reliable for other topics).

    ``/clock`` is reliable too, as the simulator publishes it: that matches the
    best-effort time sources of nodes and reliable subscribers alike.
    """
    if topic == topics.TASK_INSTRUCTION:
        return topics.LATCHED_QOS
    if topic.endswith(('/image_raw', '/camera_info')) or topic == topics.MULTIVIEW_IMAGE:
        return topics.SENSOR_QOS
    return topics.RELIABLE_QOS


def to_bag_qos(profile: QoSProfile) -> Qos:
    """Return ``profile`` as the rosbags QoS record a bag's metadata stores."""
    history = (QosHistory.KEEP_ALL if profile.history == HistoryPolicy.KEEP_ALL
               else QosHistory.KEEP_LAST)
    return Qos(history=history, depth=int(profile.depth),
               reliability=_RELIABILITY.get(profile.reliability, QosReliability.RELIABLE),
               durability=_DURABILITY.get(profile.durability, QosDurability.VOLATILE),
               deadline=_NO_TIME, lifespan=_NO_TIME, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=_NO_TIME, avoid_ros_namespace_conventions=False)


def playback_qos(topic: str, offered: Sequence[Qos]) -> QoSProfile:
    """
    Return the profile to publish a recorded ``topic`` with, as ``ros2 bag play`` picks it.

    One stored profile is offered again (reliability, durability, depth); with
    several publishers the player is reliable and latched only if all of them
    were, so it matches every subscriber any of them matched. With none stored,
    the stack's own QoS for the topic (:func:`stack_qos`).
    """
    if not offered:
        return stack_qos(topic)
    best_effort = any(q.reliability == QosReliability.BEST_EFFORT for q in offered)
    latched = all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    depths = [q.depth for q in offered if q.history != QosHistory.KEEP_ALL and q.depth > 0]
    return QoSProfile(
        depth=max(depths) if len(depths) == len(offered) else PLAY_DEPTH,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
