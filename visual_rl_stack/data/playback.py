"""
What a bag player plays and when: the ROS-free half of the player node (``vrl play``).

:func:`plan_playback` reads the bags' metadata once: which topics can be
played (their rclpy class is installed), with which QoS (the stored offered
profiles, :func:`.qos.playback_qos`), and what is skipped and why (a type
that is not installed here, a bag that cannot be opened). A
:class:`PlaybackCursor` then walks the messages of the bags one after
another, in log-time order within each bag, surviving a bag that turns out
truncated half-way (the error is reported and the next bag follows), and
cuts them into *frames* for lockstep stepping: a frame is everything logged
before the next message of the step topic (``/joint_states`` by default),
so one frame is one control step with every camera image of it, however
late the images were logged. :class:`Pacer` maps log times to wall time at a
rate, across pauses.
"""

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
import time
from typing import Callable, Iterable, Iterator, Optional, Sequence

from rclpy.qos import QoSProfile
from visual_rl_stack.ros import topics as stack_topics

from .bags import bag_connections, BagError, BagMessage, message_class, read_messages
from .qos import playback_qos


@dataclass(frozen=True)
class PlayedTopic:
    """One topic the player publishes: its ROS type, QoS and stored message count."""

    topic: str
    msgtype: str
    qos: QoSProfile
    count: int


@dataclass
class PlaybackPlan:
    """The bags to play, the topics published from them and what is left out (and why)."""

    bags: list[Path]
    topics: dict[str, PlayedTopic]
    skipped: dict[str, str] = field(default_factory=dict)
    unreadable: dict[Path, str] = field(default_factory=dict)
    #: Publish /clock from the log times (asked for, and no bag holds a /clock of its own).
    make_clock: bool = False

    def notes(self) -> list[str]:
        """Return one human-readable line per thing that will not be played."""
        lines = [f'skipping bag {bag}: {why}' for bag, why in self.unreadable.items()]
        lines += [f'skipping {topic}: {why}' for topic, why in sorted(self.skipped.items())]
        return lines


def plan_playback(bags: Sequence[Path], topics: Optional[Iterable[str]] = None,
                  clock: bool = False) -> PlaybackPlan:
    """
    Work out what playing ``bags`` (in this order) publishes; see the module doc.

    ``topics`` limits playback to those topics (a wanted topic no bag holds is
    noted in ``skipped``). ``clock`` asks for a ``/clock`` made from the log
    times, as ``ros2 bag play --clock`` does; a bag that records ``/clock``
    already is played with its own (two clocks would fight). Raises BagError
    only when nothing at all can be played.
    """
    wanted = None if topics is None else set(topics)
    plan = PlaybackPlan(bags=[], topics={})
    counts: dict[str, int] = {}
    offered: dict[str, list] = {}
    types: dict[str, str] = {}
    for bag in map(Path, bags):
        try:
            connections = bag_connections(bag)
        except BagError as error:
            plan.unreadable[bag] = str(error)
            continue
        plan.bags.append(bag)
        for topic, msgtype, qos, count in connections:
            if topic in plan.skipped:
                continue
            if wanted is not None and topic not in wanted:
                continue
            if types.setdefault(topic, msgtype) != msgtype:
                plan.skipped[topic] = (f'recorded as {types[topic]} in one bag and {msgtype} in '
                                       f'{bag}; a topic has one type')
                continue
            counts[topic] = counts.get(topic, 0) + count
            offered.setdefault(topic, []).extend(qos)
    for topic, msgtype in types.items():
        if topic in plan.skipped:
            continue
        try:
            message_class(msgtype)
        except BagError as error:
            plan.skipped[topic] = f'{error}; its messages are not played'
            continue
        plan.topics[topic] = PlayedTopic(topic, msgtype, playback_qos(topic, offered[topic]),
                                         counts[topic])
    for topic in sorted((wanted or set()) - set(types)):
        plan.skipped[topic] = 'asked for, but no bag holds it'
    plan.make_clock = clock and stack_topics.CLOCK not in plan.topics
    if not plan.topics:
        raise BagError('nothing to play: ' + ('; '.join(plan.notes()) or 'the bags are empty'))
    return plan


class PlaybackCursor:
    """
    The messages of a plan in play order, with look-ahead to cut lockstep frames.

    A bag that fails half-way is reported through ``on_error`` and playback
    goes on with the next bag; :attr:`failed` lists them.
    """

    def __init__(self, plan: PlaybackPlan, on_error: Callable[[str], None] = print) -> None:
        """Start before the first message of the first bag of ``plan``."""
        self.plan = plan
        self.on_error = on_error
        self.failed: dict[Path, str] = {}
        self._messages = self._chain()
        self._ahead: deque[BagMessage] = deque()
        #: Index into plan.bags of the bag the next message comes from.
        self.bag_index = 0
        self._bag_of: deque[int] = deque()

    def _chain(self) -> Iterator[tuple[int, BagMessage]]:
        for index, bag in enumerate(self.plan.bags):
            played = 0
            try:
                for message in read_messages(bag, self.plan.topics):
                    played += 1
                    yield index, message
            except BagError as error:
                self.failed[bag] = str(error)
                self.on_error(f'{error} (after {played} messages); going on with the next bag')

    def _fill(self, n: int) -> bool:
        """Read until ``n`` messages are buffered; return whether there are that many."""
        while len(self._ahead) < n:
            item = next(self._messages, None)
            if item is None:
                return False
            self._bag_of.append(item[0])
            self._ahead.append(item[1])
        return True

    def peek(self) -> Optional[BagMessage]:
        """Return the next message without consuming it (None at the end)."""
        return self._ahead[0] if self._fill(1) else None

    def upcoming_bag(self) -> Optional[int]:
        """Return the index (into ``plan.bags``) of the bag the next message is from."""
        return self._bag_of[0] if self._fill(1) else None

    def take(self) -> Optional[BagMessage]:
        """Return and consume the next message (None at the end)."""
        if not self._fill(1):
            return None
        self.bag_index = self._bag_of.popleft()
        return self._ahead.popleft()

    def take_frame(self, step_topic: str = stack_topics.JOINT_STATES) -> list[BagMessage]:
        """
        Return and consume one frame: the next ``step_topic`` message and what belongs to it.

        That is every message before the step message after it, less those
        logged at or after its log time (the next step's ``/clock``), and
        never past the end of a bag. A bag without the step topic is one frame.
        """
        steps, i = 0, 0
        while self._fill(i + 1) and self._bag_of[i] == self._bag_of[0]:
            if self._ahead[i].topic == step_topic:
                steps += 1
                if steps == 2:
                    break
            i += 1
        if steps == 2:
            cut = self._ahead[i].log_time
            while (self._ahead[i - 1].log_time >= cut
                   and self._ahead[i - 1].topic != step_topic):
                i -= 1
        return [self.take() for _ in range(i)]


class Pacer:
    """
    Map log time to wall time at ``rate`` times real time, paused time excluded.

    :meth:`anchor` ties a log time to now (at the start of each bag and after
    a lockstep step, so timed playback resumes from where stepping left it).
    """

    def __init__(self, rate: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Play at ``rate`` (> 0) times real time, reading wall time from ``clock``."""
        if not rate > 0:
            raise ValueError(f'rate must be positive, got {rate}')
        self.rate = rate
        self.clock = clock
        self._log0: Optional[int] = None
        self._wall0 = 0.0
        self._paused_at: Optional[float] = None

    def _now(self) -> float:
        """Return wall time, frozen while paused."""
        return self._paused_at if self._paused_at is not None else self.clock()

    def anchor(self, log_time: int) -> None:
        """Make ``log_time`` due now (at the paused instant while paused)."""
        self._log0, self._wall0 = int(log_time), self._now()

    @property
    def anchored(self) -> bool:
        """Return whether a log time has been tied to wall time yet."""
        return self._log0 is not None

    def delay(self, log_time: int) -> float:
        """Return the seconds until ``log_time`` is due (<= 0: due now or late)."""
        if self._log0 is None:
            self.anchor(log_time)
        return self._wall0 + (log_time - self._log0) * 1e-9 / self.rate - self._now()

    def now_log_time(self) -> int:
        """Return the log time that is due now (the playback position of a generated /clock)."""
        return int(self._log0 + (self._now() - self._wall0) * self.rate * 1e9)

    def pause(self) -> None:
        """Stop the log clock; :meth:`delay` stays frozen until :meth:`resume`."""
        if self._paused_at is None:
            self._paused_at = self.clock()

    def resume(self) -> None:
        """Restart the log clock where it stopped."""
        if self._paused_at is not None:
            self._wall0 += self.clock() - self._paused_at
            self._paused_at = None
