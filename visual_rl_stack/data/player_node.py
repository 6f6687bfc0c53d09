"""
ROS 2 node ``player``: play rosbag2 bags onto DDS, like ``ros2 bag play``, without rosbag2.

A thin adapter over :mod:`.playback`. Messages go out as the CDR bytes the
bag stores (raw publishers, never deserialised), each topic with the QoS its
recording publishers offered, at the recorded timing scaled by ``rate``.
Several bags play one after another (each bag is an episode; ``ros2 bag
play`` would merge them by time instead). With ``clock`` and no recorded
``/clock``, a ``rosgraph_msgs/Clock`` with the playback position goes out
before every message and ``clock_hz`` times a second in between, as ``ros2
bag play --clock`` does.

Lockstep: ``~/pause`` (std_srvs/SetBool: true pauses, false resumes),
``~/play_next`` (std_srvs/Trigger: one message) and ``~/step``
(std_srvs/Trigger: one frame, the next control step with its images, see
:meth:`.playback.PlaybackCursor.next_frame`) while paused; ``start_paused``
starts that way. In the same process, :meth:`BagPlayerNode.play_frame` does
what ``~/step`` does and returns the frame.

Topics whose type is not installed, and bags that cannot be opened or break
off half-way, are skipped with an error naming them; the player never stops
for them.
"""

from dataclasses import dataclass
import sys
import threading
import time
from typing import Any, Optional

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from std_srvs.srv import SetBool, Trigger
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import run_node_until
from visual_rl_stack.ros.msg_conversions import stamp_from_seconds
from visual_rl_stack.ros.node_params import declare_params, ParamSpec
from visual_rl_stack.ros.shutdown import ending_on_shutdown, init_process_context

from .bags import BagError, BagMessage, find_bags, message_class, serialize
from .playback import Pacer, plan_playback, PlaybackCursor, PlaybackPlan
from .qos import stack_qos

PARAMS = {
    'bags': ParamSpec([''], 'Bags to play, one after another (a folder of bags plays each).',
                      read_only=True),
    'rate': ParamSpec(1.0, 'Playback speed as a multiple of the recorded timing.',
                      low=0.01, high=1000.0, read_only=True),
    'clock': ParamSpec(False, 'Publish /clock from the recording times when the bags hold none.',
                       read_only=True),
    'clock_hz': ParamSpec(40.0, 'Rate (Hz, wall clock) of /clock between messages, with clock.',
                          low=1.0, high=1000.0, read_only=True),
    'topics': ParamSpec([''], 'Topics to play; empty = every playable topic.', read_only=True),
    'loop': ParamSpec(False, 'Start again from the first bag after the last.', read_only=True),
    'start_paused': ParamSpec(False, 'Start paused (lockstep: ~/step, ~/play_next, ~/pause).',
                              read_only=True),
    'step_topic': ParamSpec(topics.JOINT_STATES, 'Topic whose messages start a frame for ~/step.',
                            read_only=True),
    'delay': ParamSpec(0.5, 'Seconds (wall clock) to wait before the first message, so '
                       'subscribers can match the new publishers.', low=0.0, high=60.0,
                       read_only=True),
    'wait_for_subscribers': ParamSpec(0.0, 'Before the delay, wait up to this many seconds '
                                      'until every played topic has a subscriber (a recorder '
                                      'started after the player); 0: do not wait.', low=0.0,
                                      high=3600.0, read_only=True),
}


@dataclass
class PlayerStatus:
    """Where playback is: published messages, frames, passes, and whether it has finished."""

    published: int = 0
    frames: int = 0
    passes: int = 0
    finished: bool = False


class BagPlayerNode(Node):
    """Publish the messages of the ``bags`` parameter at their recorded times (or in lockstep)."""

    def __init__(self, **kwargs: Any) -> None:
        """
        Declare parameters, plan the playback, create publishers and services; start playing.

        ``kwargs`` go to ``rclpy.node.Node``. Raises ValueError for invalid
        parameters or bags of which nothing can be played.
        """
        super().__init__('player', **kwargs)
        self.values = values = declare_params(self, PARAMS)
        paths = [p for p in values['bags'] if p]
        if not paths:
            raise ValueError('player: parameter bags (bag folders to play) is required')
        wanted = [t for t in values['topics'] if t] or None
        try:
            bags = [bag for path in paths for bag in find_bags(path)]
            self.plan: PlaybackPlan = plan_playback(bags, wanted, values['clock'])
        except BagError as error:
            raise ValueError(f'player: {error}') from error
        for note in self.plan.notes():
            self.get_logger().error(note)
        if values['clock'] and not self.plan.make_clock:
            self.get_logger().warning(f'clock: the bags hold {topics.CLOCK}; playing theirs')
        self.publishers_ = {
            name: self.create_publisher(message_class(t.msgtype), name, t.qos)
            for name, t in self.plan.topics.items()}
        if self.plan.make_clock:
            self.publishers_[topics.CLOCK] = self.create_publisher(
                Clock, topics.CLOCK, stack_qos(topics.CLOCK))
        self.status = PlayerStatus()
        self.pacer = Pacer(values['rate'])
        self._cursor = PlaybackCursor(self.plan, self.get_logger().error)
        self._bag: Optional[int] = None
        self._last_clock = -1
        self._lock = threading.Condition()
        self._paused = bool(values['start_paused'])
        self._stop = threading.Event()
        self.create_service(SetBool, '~/pause', self._on_pause)
        self.create_service(Trigger, '~/play_next', self._on_play_next)
        self.create_service(Trigger, '~/step', self._on_step)
        self._thread = threading.Thread(target=self._play, name='player', daemon=True)
        self._thread.start()
        self.get_logger().info(
            f'playing {len(self.plan.bags)} bag(s), {len(self.plan.topics)} topics at '
            f'{values["rate"]}x' + (' (paused: ~/step, ~/play_next)' if self._paused else ''))

    @property
    def paused(self) -> bool:
        """Tell whether timed playback is paused, for lockstep stepping."""
        return self._paused

    @property
    def finished(self) -> bool:
        """Return whether every message has been played (never, with ``loop``)."""
        return self.status.finished

    @property
    def failed_bags(self) -> dict:
        """Return bag -> error of the bags that broke off while being played."""
        return dict(self._cursor.failed)

    def set_paused(self, paused: bool) -> None:
        """Pause or resume timed playback; resuming goes on from the current position."""
        with self._lock:
            if paused:
                self.pacer.pause()
            elif self._paused:
                self.pacer.resume()
            self._paused = bool(paused)
            self._lock.notify_all()

    def play_frame(self) -> list[BagMessage]:
        """Publish the next frame now (see the module doc); return it (empty at the end)."""
        with self._lock:
            frame = self._take(lambda: self._cursor.take_frame(self.values['step_topic']))
            if frame:
                self.status.frames += 1
                self._publish(frame)
        return frame

    def play_next(self) -> Optional[BagMessage]:
        """Publish the next message now; return it (None at the end)."""
        with self._lock:
            message = self._take(lambda: [m for m in [self._cursor.take()] if m])
            if message:
                self._publish(message)
        return message[0] if message else None

    def stop(self) -> None:
        """Stop the playback thread (idempotent)."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def destroy_node(self) -> None:
        """Stop playing, then destroy the node."""
        self.stop()
        super().destroy_node()

    # Services ----------------------------------------------------------------------------

    def _on_pause(self, request: SetBool.Request, response: SetBool.Response
                  ) -> SetBool.Response:
        self.set_paused(request.data)
        response.success = True
        response.message = 'paused' if request.data else 'playing'
        return response

    def _on_play_next(self, request: Trigger.Request, response: Trigger.Response
                      ) -> Trigger.Response:
        return self._stepped(response, lambda: [m for m in [self.play_next()] if m])

    def _on_step(self, request: Trigger.Request, response: Trigger.Response
                 ) -> Trigger.Response:
        return self._stepped(response, self.play_frame)

    def _stepped(self, response: Trigger.Response, play: Any) -> Trigger.Response:
        """Answer a lockstep request: refused unless paused, else what was played."""
        if not self._paused:
            response.success, response.message = False, 'not paused: call ~/pause true first'
            return response
        played = play()
        response.success = bool(played)
        response.message = (f'played {len(played)} message(s) up to t='
                            f'{played[-1].log_time * 1e-9:.3f} s' if played
                            else 'nothing left to play')
        return response

    # Playing -----------------------------------------------------------------------------

    def _take(self, take: Any) -> list[BagMessage]:
        """Take messages from the cursor (lock held), starting over first when looping."""
        messages = take()
        if not messages and self.values['loop'] and not self._stop.is_set():
            self.status.passes += 1
            self._cursor = PlaybackCursor(self.plan, self.get_logger().error)
            self._bag = None
            messages = take()
        if not messages:
            self.status.finished = True
        return messages

    def _publish(self, messages: list[BagMessage]) -> None:
        """Publish ``messages`` (lock held), each after the /clock it needs; re-anchor time."""
        for message in messages:
            if self.plan.make_clock and message.log_time > self._last_clock:
                self._publish_clock(message.log_time)
            self.publishers_[message.topic].publish(message.data)
            self.status.published += 1
        self.pacer.anchor(messages[-1].log_time)
        self._bag = self._cursor.bag_index

    def _publish_clock(self, log_time: int) -> None:
        self._last_clock = log_time
        self.publishers_[topics.CLOCK].publish(serialize(Clock(
            clock=stamp_from_seconds(log_time * 1e-9))))

    def _wait_for_subscribers(self) -> None:
        """Wait (``wait_for_subscribers`` s at most) until every played topic has a subscriber."""
        deadline = time.monotonic() + self.values['wait_for_subscribers']
        while True:
            unmatched = sorted(t for t, p in self.publishers_.items()
                               if t != topics.CLOCK and p.get_subscription_count() == 0)
            if not unmatched or self._stop.is_set():
                return
            if time.monotonic() >= deadline:
                self.get_logger().warning(f'playing although nothing subscribes to {unmatched}')
                return
            self._stop.wait(0.05)

    def _play(self) -> None:
        """Publish each message when it is due (timed playback); wait while paused."""
        if self.values['wait_for_subscribers'] > 0:
            self._wait_for_subscribers()
        if not self._stop.wait(self.values['delay']):
            try:
                self._play_timed()
            except Exception as error:  # noqa: BLE001 - report; the node keeps serving
                if not self._stop.is_set():
                    self.get_logger().error(f'playback stopped: {error}')
        self.status.finished = True

    def _play_timed(self) -> None:
        period = 1.0 / self.values['clock_hz']
        while not self._stop.is_set():
            with self._lock:
                if self._paused:
                    self._lock.wait(timeout=period)
                    continue
                message = self._cursor.peek()
                if message is None:
                    if not self._take(lambda: [m for m in [self._cursor.peek()] if m]):
                        return
                    continue
                if self._cursor.upcoming_bag() != self._bag or not self.pacer.anchored:
                    self.pacer.anchor(message.log_time)  # a new bag starts now
                    self._bag = self._cursor.upcoming_bag()
                wait = self.pacer.delay(message.log_time)
                if wait <= 0:
                    self._publish([self._cursor.take()])
                    continue
                if self.plan.make_clock and self.pacer.now_log_time() > self._last_clock:
                    self._publish_clock(self.pacer.now_log_time())
                self._lock.wait(timeout=min(wait, period))


def spin_until_finished(node: BagPlayerNode, context: Context) -> None:
    """Serve the player's services until it has played everything or Ctrl-C."""
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        with ending_on_shutdown(context):
            while context.ok() and not node.finished:
                executor.spin_once(timeout_sec=0.05)
            time.sleep(0.2)  # let DDS deliver the last (reliable) messages
    finally:
        executor.shutdown()


def play_main(bags: list[str], rate: float = 1.0, clock: bool = False,
              topic_names: Optional[list[str]] = None, loop: bool = False,
              start_paused: bool = False, delay: float = 0.5,
              context: Optional[Context] = None,
              wait_for_subscribers: float = 0.0) -> PlayerStatus:
    """
    Play ``bags`` until the last message (or Ctrl-C; forever with ``loop``); return the status.

    Without ``context`` a private one is initialised (Ctrl-C and SIGTERM end it cleanly)
    and shut down afterwards.
    """
    own_context = context is None
    if own_context:
        context = init_process_context()
    overrides = [Parameter('bags', value=[str(b) for b in bags]),
                 Parameter('rate', value=float(rate)), Parameter('clock', value=bool(clock)),
                 Parameter('loop', value=bool(loop)),
                 Parameter('start_paused', value=bool(start_paused)),
                 Parameter('delay', value=float(delay)),
                 Parameter('wait_for_subscribers', value=float(wait_for_subscribers))]
    if topic_names:
        overrides.append(Parameter('topics', value=list(topic_names)))
    try:
        node = BagPlayerNode(context=context, parameter_overrides=overrides)
        try:
            spin_until_finished(node, context)
        finally:
            node.destroy_node()
    finally:
        if own_context:
            context.try_shutdown()
    status = node.status
    print(f'played {status.published} messages from {len(node.plan.bags)} bag(s)'
          + (f'; skipped: {"; ".join(node.plan.notes())}' if node.plan.notes() else ''))
    return status


def main(args: Optional[list[str]] = None) -> int:
    """Run the player node (``ros2 run visual_rl_stack player_node --ros-args -p bags:=[...]``)."""
    return run_node_until(lambda context: BagPlayerNode(context=context), spin_until_finished,
                          args)


if __name__ == '__main__':
    sys.exit(main())
