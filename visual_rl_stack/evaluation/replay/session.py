"""
Replay one episode bag through the real nodes over DDS, in lockstep, and keep what they said.

The graph is composed per episode from the stack's node specs: the camera
node (views and image size to suit the policy), the policy node in *shadow
mode* (active from the start, its command topics remapped to
:func:`visual_rl_stack.ros.topics.shadow_topic`, so it computes commands while the
bag drives the scene), and on request the affordance and world-model nodes;
all follow the ``/clock`` the player publishes. An evaluator node plays the
bag one frame (control step) at a time with the in-process player and waits,
per frame, until every node has answered it: the tiled image and the command
stamped with the step, one dense reward, one world-model update. A node that
misses :data:`MAX_MISSES` steps in a row is no longer waited for that episode
(noted), so a broken node costs seconds, not the evaluation.
"""

from collections import Counter
from dataclasses import dataclass, field, replace
import time
from typing import Any, Callable, Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseArray, PoseStamped, TwistStamped
import numpy as np
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32, Float64, String
from std_srvs.srv import Trigger
from visual_rl_stack.core.image_buffers import image_to_array
from visual_rl_stack.data.bags import decode
from visual_rl_stack.data.dataset import actions
from visual_rl_stack.data.player_node import BagPlayerNode
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import GraphRunner
from visual_rl_stack.ros.graph import (AFFORDANCE_NODE, CAMERA_NODE, CAMERAS, GraphSpec,
                                       POLICY_NODE, WORLD_MODEL_NODE)
from visual_rl_stack.ros.msg_conversions import pose_to_arrays

from .recorded import RecordedEpisode
from ..ros_eval import simulator_speed_limits

#: Steps in a row a node may leave unanswered before it is no longer waited for.
MAX_MISSES = 3
#: Command topics of each action mode, and the gripper's, as the policy node publishes them.
ARM_TOPICS = {'delta': (topics.ARM_DELTA_TWIST, TwistStamped),
              'absolute': (topics.ARM_TARGET_POSE, PoseStamped)}
#: World-model stage label of a finished plan (``'<n+1> done'``).
DONE = 'done'
#: Views the affordance node prompts with (its default; ``config/sim_graph.yaml``).
AFFORDANCE_VIEWS = ('front', 'side')
#: ``--world-model`` value that runs the world-model node's stages without a learned model.
STAGES_ONLY = 'stages'


@dataclass(frozen=True)
class ReplaySettings:
    """What to run on the replayed episodes (None leaves a component out)."""

    policy: Optional[str] = None
    affordance: Optional[str] = None
    world_model: Optional[str] = None
    device: str = 'auto'
    #: Seconds a node may take to answer one step.
    step_timeout: float = 20.0
    #: Ask the affordance node again every this many steps (0: only at the episode start).
    query_every: int = 10
    #: Safety-filter speed limits of config/policy_node.yaml (what a robot deploys) instead
    #: of the simulator's own per-step limits (the filter then only refuses what it clamps).
    deployed_limits: bool = False


@dataclass
class Components:
    """Which nodes run on one episode, with the camera layout they need."""

    policy: bool
    affordance: bool
    world_model: bool
    views: list[str]
    image_size: tuple[int, int]
    action_mode: Optional[str] = None
    #: Component -> why it is left out of this episode.
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class EpisodeTrace:
    """What the nodes published while one episode was replayed, by frame."""

    stamps: list[int] = field(default_factory=list)
    commands: dict[int, np.ndarray] = field(default_factory=dict)
    interventions: dict[int, list[str]] = field(default_factory=dict)
    multiview: dict[int, np.ndarray] = field(default_factory=dict)
    dense: list[tuple[int, float]] = field(default_factory=list)
    keypoints: list[tuple[int, np.ndarray]] = field(default_factory=list)
    stage: list[tuple[int, str]] = field(default_factory=list)
    progress: list[tuple[int, float]] = field(default_factory=list)
    wm_reward: list[tuple[int, float]] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missed: dict[str, int] = field(default_factory=dict)
    wall_time: float = 0.0
    policy_report: dict = field(default_factory=dict)

    def series(self, name: str, steps: int) -> np.ndarray:
        """Return a per-frame output (dense, progress, wm_reward) as T values, NaN gaps."""
        out = np.full(steps, np.nan)
        for frame, value in getattr(self, name):
            if 0 <= frame < steps:
                out[frame] = value
        return out


def plan_components(episode: RecordedEpisode, settings: ReplaySettings,
                    policy_info: Optional[Any]) -> Components:
    """
    Decide what can run on ``episode``; every component left out gets a reason.

    ``policy_info`` is the opened policy (its views, image size, state layout,
    task and action mode) when a policy is evaluated.
    """
    skipped: dict[str, str] = {}
    views = [v for v in CAMERAS if v in episode.views] or list(episode.views)
    size = episode.image_size or (64, 64)
    use_policy = policy_info is not None
    if use_policy:
        problem = policy_problem(episode, policy_info)
        if problem:
            skipped['policy'] = problem
            use_policy = False
        elif policy_info.uses_images:
            views, size = list(policy_info.views), tuple(policy_info.image_size)
    use_affordance = settings.affordance is not None
    if use_affordance:
        missing = [v for v in AFFORDANCE_VIEWS if v not in episode.views]
        without_pose = [v for v in AFFORDANCE_VIEWS
                        if topics.camera_pose_topic(v) not in episode.topics]
        if missing:
            skipped['affordance'] = (f'the affordance node prompts views {list(AFFORDANCE_VIEWS)};'
                                     f' the bag has cameras {episode.views}')
        elif without_pose:
            skipped['affordance'] = (f'the bag has no camera pose topics for {without_pose} '
                                     '(/<camera>/pose) to lift keypoints with')
        use_affordance = not (missing or without_pose)
    use_world_model = settings.world_model is not None
    if use_world_model and topics.TASK_STATE not in episode.topics:
        skipped['world_model'] = (f'the world-model node judges stages on {topics.TASK_STATE}, '
                                  'which the bag does not hold')
        use_world_model = False
    if not views:
        skipped['cameras'] = 'the bag holds no camera (colour and depth topics)'
    return Components(use_policy, use_affordance, use_world_model, views, size,
                      episode.action_mode, skipped)


def policy_problem(episode: RecordedEpisode, policy: Any) -> Optional[str]:
    """Return why ``policy`` cannot be replayed on ``episode`` (None when it can)."""
    if episode.action_mode is None:
        return 'the bag holds no recorded commands to compare with'
    if policy.action_mode and policy.action_mode != episode.action_mode:
        return (f'the policy outputs {policy.action_mode} actions, the bag records '
                f'{episode.action_mode} commands')
    if policy.task and episode.task and policy.task != episode.task:
        return f'the policy was trained on {policy.task!r}, the bag records {episode.task!r}'
    if policy.uses_images:
        missing = [v for v in policy.views if v not in episode.views]
        if missing:
            return (f'the policy looks at views {list(policy.views)}; the bag has no {missing} '
                    f'(its cameras: {episode.views})')
    labels = policy.state_labels
    if labels is not None and episode.state_labels is not None and labels != episode.state_labels:
        return (f'the observation the bag makes ({_layout(episode.state_labels)}) is not the '
                f"policy's ({_layout(labels)})")
    if episode.state_labels is None:
        return 'the bag has no observation (joint states and TCP pose) at its first step'
    return None


def _layout(labels: list[tuple[str, int]]) -> str:
    return ', '.join(f'{name}[{size}]' for name, size in labels)


def replay_graph(components: Components, settings: ReplaySettings, control_hz: float
                 ) -> tuple[GraphSpec, dict[str, dict[str, Any]]]:
    """Return the graph that replays one episode, and the parameters of its nodes."""
    height, width = components.image_size
    nodes, overrides = [], {}
    if components.views:
        nodes.append(CAMERA_NODE)
        overrides['camera_node'] = {'cameras': components.views, 'image_width': int(width),
                                    'image_height': int(height), 'publish_points': False}
    if components.policy:
        remaps = tuple((t, topics.shadow_topic(t)) for t in (
            topics.ARM_DELTA_TWIST, topics.ARM_TARGET_POSE, topics.GRIPPER_COMMAND))
        nodes.append(replace(POLICY_NODE, remappings=remaps))
        overrides['policy_node'] = {'policy': str(settings.policy), 'device': settings.device,
                                    'active_on_start': True, 'control_hz': float(control_hz),
                                    **({} if settings.deployed_limits
                                       else simulator_speed_limits(control_hz))}
    if components.affordance:
        nodes.append(AFFORDANCE_NODE)
        overrides['affordance_node'] = {'backend': str(settings.affordance),
                                        'views': list(AFFORDANCE_VIEWS)}
    if components.world_model:
        nodes.append(WORLD_MODEL_NODE)
        model = '' if settings.world_model == STAGES_ONLY else str(settings.world_model)
        overrides['world_model_node'] = {'world_model': model, 'control_hz': float(control_hz)}
    return (GraphSpec('replay_eval', tuple(nodes), use_sim_time=True,
                      description='nodes scored by vrl replay-eval'), overrides)


class ReplayEvaluator(Node):
    """Play one bag frame by frame and collect every output the graph publishes for it."""

    def __init__(self, episode: RecordedEpisode, components: Components,
                 settings: ReplaySettings, context: Context) -> None:
        """Create the player (paused) and the subscriptions to every scored output."""
        super().__init__('replay_evaluator', context=context)
        self.episode, self.components, self.settings = episode, components, settings
        self.trace = EpisodeTrace()
        self.frame = -1
        self._dropped: set[str] = set()
        self._misses: dict[str, int] = {}
        self._query_client = None
        self._keypoint_stamp: Optional[int] = None
        #: Frame during which each node last reported a problem (that is its answer), and
        #: how many problems it has reported.
        self._diagnosed: dict[str, int] = {}
        self._problems: Counter = Counter()
        self.player = BagPlayerNode(context=context, parameter_overrides=[
            Parameter('bags', value=[str(episode.bag)]),
            Parameter('clock', value=topics.CLOCK not in episode.topics),
            Parameter('start_paused', value=True), Parameter('delay', value=0.0),
            Parameter('use_sim_time', value=False)])
        sub, reliable = self.create_subscription, topics.RELIABLE_QOS
        sub(Image, topics.MULTIVIEW_IMAGE, self._on_multiview, topics.SENSOR_QOS)
        sub(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, reliable)
        if components.policy:
            topic, msg_type = ARM_TOPICS[components.action_mode]
            self._arms: list[Any] = []
            self._grippers: list[Float64] = []
            sub(msg_type, topics.shadow_topic(topic), self._on_arm, reliable)
            sub(Float64, topics.shadow_topic(topics.GRIPPER_COMMAND), self._on_gripper, reliable)
        if components.affordance:
            sub(Float32, topics.DENSE_REWARD, self._keeper('dense'), reliable)
            sub(PoseArray, topics.AFFORDANCE_KEYPOINTS, self._on_keypoints, topics.LATCHED_QOS)
            self._query_client = self.create_client(Trigger, topics.AFFORDANCE_QUERY)
        if components.world_model:
            sub(String, topics.WORLD_MODEL_STAGE,
                lambda m: self.trace.stage.append((self.frame, m.data)), reliable)
            sub(Float32, topics.WORLD_MODEL_PROGRESS, self._keeper('progress'), reliable)
            sub(Float32, topics.WORLD_MODEL_REWARD, self._keeper('wm_reward'), reliable)
            sub(Bool, topics.WORLD_MODEL_KEYFRAME, self._on_keyframe, reliable)
        self.executor_ = SingleThreadedExecutor(context=context)
        self.executor_.add_node(self)

    # Outputs ------------------------------------------------------------------------------

    def _keeper(self, name: str) -> Callable[[Any], None]:
        def keep(msg: Any) -> None:
            getattr(self.trace, name).append((self.frame, float(msg.data)))
        return keep

    def _on_multiview(self, msg: Image) -> None:
        self.trace.multiview[_ns(msg.header.stamp)] = image_to_array(msg)

    def _on_arm(self, msg: Any) -> None:
        self._arms.append(msg)
        self._pair_commands()

    def _on_gripper(self, msg: Float64) -> None:
        self._grippers.append(msg)
        self._pair_commands()

    def _pair_commands(self) -> None:
        """Pair the k-th arm command with the k-th gripper command (one each per step)."""
        while self._arms and self._grippers:
            arm, gripper = self._arms.pop(0), self._grippers.pop(0)
            self.trace.commands[_ns(arm.header.stamp)] = actions(
                self.components.action_mode, [arm], [gripper], 1.0 / self.episode.control_hz)[0]

    def _on_keypoints(self, msg: PoseArray) -> None:
        if not msg.poses:
            return  # no plan (yet, or any more): nothing to score
        points = np.array([pose_to_arrays(p)[0] for p in msg.poses])
        stamp = _ns(msg.header.stamp)
        if stamp == self._keypoint_stamp and np.array_equal(points, self.trace.keypoints[-1][1]):
            return  # the node republishes its plan periodically
        self._keypoint_stamp = stamp
        self.trace.keypoints.append((self.frame, points))

    def _on_keyframe(self, msg: Bool) -> None:
        if msg.data:
            self.trace.keyframes.append(self.frame)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        """Keep the policy's safety interventions by stamp, and other nodes' problems."""
        for status in msg.status:
            if status.name.endswith(': safety') and status.hardware_id == 'policy':
                stamp = _ns(msg.header.stamp)
                codes = [kv.key for kv in status.values]
                self.trace.interventions.setdefault(stamp, []).extend(codes)
            elif _level(status) > 0:  # WARN, ERROR or STALE: the node's answer to this step
                self._diagnosed[status.hardware_id] = self.frame
                self._problems[status.hardware_id] += 1
                note = f'{status.name}: {status.message}'
                if note not in self.trace.notes:
                    self.trace.notes.append(note)

    # Driving ------------------------------------------------------------------------------

    def wait_until_connected(self, graph: GraphRunner, timeout: float = 10.0) -> None:
        """Wait until every node's subscription to a played topic has matched the player."""
        wanted: dict[str, int] = {}
        for node in graph.nodes.values():
            for subscription in node.subscriptions:
                if subscription.topic_name in self.player.publishers_:
                    wanted[subscription.topic_name] = wanted.get(subscription.topic_name, 0) + 1
        publishers = self.player.publishers_
        self._spin_until(lambda: all(publishers[t].get_subscription_count() >= n
                                     for t, n in wanted.items()), timeout)
        outputs = [s for s in self.subscriptions if s.topic_name != topics.DIAGNOSTICS]
        self._spin_until(lambda: all(self.count_publishers(s.topic_name) > 0
                                     for s in outputs), timeout)

    def _spin_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``done()`` or ``timeout`` seconds; return whether it came true."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            self.executor_.spin_once(timeout_sec=0.05)
        return True

    def play(self, graph: GraphRunner, progress: Optional[Callable[[int], None]] = None
             ) -> EpisodeTrace:
        """Play every frame of the bag and wait for the nodes' answers; return the trace."""
        started = time.monotonic()
        self.wait_until_connected(graph)
        while True:
            self.frame += 1
            frame = self.player.play_frame()
            if not frame:
                break
            joints = [m for m in frame if m.topic == topics.JOINT_STATES]
            stamp = _ns(decode(joints[0]).header.stamp) if joints else None
            self.trace.stamps.append(stamp if stamp is not None else -1)
            if stamp is not None:
                self._wait_for_step(stamp)
            if progress is not None:
                progress(self.frame)
        self.frame -= 1
        self._spin_until(lambda: False, 0.05)  # late diagnostics of the last step
        self.trace.wall_time = time.monotonic() - started
        self.trace.notes += [f'{name} stopped answering; not waited for after {n} missed steps'
                             for name, n in self.trace.missed.items() if name in self._dropped]
        self.trace.notes += [f'player: {note}' for note in self.player.plan.notes()]
        self.trace.notes += [f'player: {bag.name}: {why}'
                             for bag, why in self.player.failed_bags.items()]
        return self.trace

    def _wait_for_step(self, stamp: int) -> None:
        """Wait for each running node's answer to the frame with joint stamp ``stamp``."""
        frame = self.frame
        waits: dict[str, Callable[[], bool]] = {}
        if self.components.views:
            waits['camera_node'] = lambda: stamp in self.trace.multiview
        if self.components.policy:
            waits['policy_node'] = lambda: stamp in self.trace.commands
        if self.components.world_model:
            # An update, or a diagnostic saying why there is none (no /ee_pose yet, ...).
            waits['world_model_node'] = lambda: (
                (self.trace.progress and self.trace.progress[-1][0] == frame)
                or self._diagnosed.get('world_model_node') == frame)
        if self.components.affordance:
            waits['affordance_node'] = lambda: (self.trace.dense
                                                and self.trace.dense[-1][0] == frame)
            if frame == 0:
                waits['affordance_node: keypoints'] = lambda: (
                    bool(self.trace.keypoints) or self._diagnosed.get('affordance_node') == frame)
        for name, done in waits.items():
            self._wait(name, done)
        every = self.settings.query_every
        if self.components.affordance and every and frame and frame % every == 0:
            self._requery()

    def _wait(self, name: str, done: Callable[[], bool]) -> None:
        """Wait for one answer; count misses; stop waiting for a node after MAX_MISSES."""
        if name in self._dropped:
            return
        if self._spin_until(done, self.settings.step_timeout):
            self._misses[name] = 0
            return
        self.trace.missed[name] = self.trace.missed.get(name, 0) + 1
        self._misses[name] = self._misses.get(name, 0) + 1
        if self._misses[name] >= MAX_MISSES:
            self._dropped.add(name)

    def _requery(self) -> None:
        """Ask the affordance node again with the current views; wait for its answer."""
        if 'affordance_node: query' in self._dropped or not self._query_client.service_is_ready():
            return
        answers, problems = len(self.trace.keypoints), self._problems['affordance_node']
        future = self._query_client.call_async(Trigger.Request())
        self._wait('affordance_node: query', future.done)
        if future.done() and future.result().success:
            # New keypoints, or a diagnostic saying why there are none (the old ones stay).
            self._wait('affordance_node: keypoints', lambda: (
                len(self.trace.keypoints) > answers
                or self._problems['affordance_node'] > problems))

    def destroy_node(self) -> None:
        """Destroy the player too."""
        self.player.destroy_node()
        self.executor_.shutdown()
        super().destroy_node()


def _level(status: DiagnosticStatus) -> int:
    """Return a status level as an int (rclpy gives the ``byte`` field as bytes)."""
    level = status.level
    return level[0] if isinstance(level, bytes) else int(level)


def _ns(stamp: Any) -> int:
    """Return a ``builtin_interfaces/Time`` (rclpy or rosbags) as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def replay_episode(episode: RecordedEpisode, components: Components, settings: ReplaySettings,
                   context: Context, progress: Optional[Callable[[int], None]] = None
                   ) -> EpisodeTrace:
    """Replay ``episode`` through a freshly started graph (see the module doc)."""
    spec, overrides = replay_graph(components, settings, episode.control_hz)
    graph = GraphRunner(spec, overrides, context)
    evaluator = None
    try:
        graph.start(background=False)
        evaluator = ReplayEvaluator(episode, components, settings, context)
        # One executor in this thread for the graph and the evaluator: the models are built
        # here, and torch ops from a second thread while this one keeps its OpenMP pool ran
        # 3.5x slower (see limit_thread_torch); the frames also stay in one order.
        for node in graph.nodes.values():
            evaluator.executor_.add_node(node)
        trace = evaluator.play(graph, progress)
        policy = graph.nodes.get('policy_node')
        if policy is not None:
            trace.policy_report = policy.runner.report()
    finally:
        if evaluator is not None:
            evaluator.destroy_node()
        graph.stop()
    return trace
