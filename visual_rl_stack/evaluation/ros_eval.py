"""
``vrl eval --via-ros``: evaluate a BC policy closed loop through the ROS graph in lockstep.

The loop is the one a robot runs: sim node -> (camera node ->) policy node ->
sim node, every message over DDS. A driver node, playing the operator and the
clock, does per episode: deactivate the policy (``~/activate`` false), set the
task and seed and reset the simulator (:class:`LockstepClient`), activate the
policy (a fresh episode that acts at once on the reset observation), then
repeatedly wait for the policy's command stamped with the current observation,
wait until the simulator has acknowledged it, and call ``/sim/step``, until
``/task/success`` or the task's step limit. The result has the JSON layout of
the in-process :func:`visual_rl_stack.evaluation.episodes.evaluate`, so the two can be
compared seed by seed.

The safety filter's speed limits are set to the simulator's own per-step
limits, so that it refuses only what the simulator would clamp anyway and the
two evaluations run the same policy; the workspace box and the NaN and
staleness guards stay as configured.
"""

from dataclasses import dataclass
import math
import os
import time
from typing import Any, Optional, Sequence

from geometry_msgs.msg import PoseArray
import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.parameter import Parameter
from std_srvs.srv import SetBool
from tqdm import tqdm
from visual_rl_stack.core.policy import Policy, PolicyOptions
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import GraphRunner
from visual_rl_stack.ros.graph import POLICY_NODE
from visual_rl_stack.ros.lockstep_client import LockstepClient
from visual_rl_stack.ros.msg_conversions import stamp_to_seconds
from visual_rl_stack.sim.commanded_pose import CommandedPose
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.tasks import make_task

from .episodes import EpisodeResult, policy_sim_config, summarise_episodes

#: Longest an episode waits for the affordance node's plan before running on without it.
PLAN_TIMEOUT_S = 30.0


class PolicyLoopDriver(LockstepClient):
    """A lockstep client that lets the policy node choose the commands, one step at a time."""

    def __init__(self, policy_node: Any, watch_plans: bool = False, **kwargs: Any) -> None:
        """
        Spin ``policy_node`` on this client's executor; watch its arm commands.

        With ``watch_plans`` the driver also watches the affordance node's
        keypoints, so an episode can wait for its plan (:meth:`wait_for_plan`).
        """
        super().__init__(**kwargs)
        self.policy_node = policy_node
        self.executor_.add_node(policy_node)
        self._command_stamps: list[float] = []
        self._plans: list[bool] = []  # per keypoints message: did it hold waypoints
        for topic, publisher in policy_node.arm_pubs.items():
            if topic != topics.GRIPPER_COMMAND:
                self.create_subscription(publisher.msg_type, topic, self._on_command,
                                         topics.RELIABLE_QOS)
        if watch_plans:
            self.create_subscription(PoseArray, topics.AFFORDANCE_KEYPOINTS,
                                     lambda msg: self._plans.append(bool(msg.poses)),
                                     topics.LATCHED_QOS)
        self.activate_client = self.create_client(
            SetBool, f'/{policy_node.get_name()}/activate')

    def plans_seen(self) -> int:
        """Return how many keypoint messages arrived so far (mark it before a reset)."""
        return len(self._plans)

    def wait_for_plan(self, mark: int, timeout: float = PLAN_TIMEOUT_S) -> bool:
        """
        Wait until the episode begun after ``mark`` has its plan; False after ``timeout`` s.

        A new episode first clears the keypoints (an empty message), then
        publishes its plan; in lockstep the simulator waits meanwhile, as it
        waits for the policy, so a slow keypoint model does not leave the
        first steps with the sparse reward only. No plan (a backend that
        failed) ends the wait at ``timeout`` and the episode runs on.
        """
        def planned() -> bool:
            after = self._plans[mark:]
            return False in after and True in after[after.index(False):]
        try:
            self._spin_until(planned, 'the keypoint plan', timeout)
        except TimeoutError:
            return False
        return True

    def command_publishers(self) -> list[Any]:
        """Return the policy node's command publishers (they drive the simulator here)."""
        return list(self.policy_node.arm_pubs.values())

    def _on_command(self, msg: Any) -> None:
        self._command_stamps.append(stamp_to_seconds(msg.header.stamp))

    def set_active(self, active: bool) -> None:
        """Switch the policy node on or off through its service."""
        response = self._call(self.activate_client, SetBool.Request(data=active), 'activate')
        if not response.success:
            raise RuntimeError(f'policy node refused activate={active}: {response.message}')

    def wait_for_command(self, stamp: float) -> None:
        """Wait for the policy's command for the observation ``stamp``, acknowledged by all."""
        self._spin_until(lambda: stamp in self._command_stamps,
                         f'the policy command for the observation at t={stamp:.3f}')
        self._command_stamps = [s for s in self._command_stamps if s > stamp]
        timeout = Duration(seconds=self.timeout)
        for publisher in self.policy_node.arm_pubs.values():
            if not publisher.wait_for_all_acked(timeout):
                raise TimeoutError(f'{publisher.topic_name} not acknowledged by the simulator')


def graph_overrides(task: str, runner: Policy,
                    extra_views: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """
    Return sim and camera node parameters that give the policy its training observations.

    ``extra_views`` are rendered too, for nodes beside the policy that need
    views it does not (the affordance node's dense reward).
    """
    config = policy_sim_config(task, runner)
    views = list(dict.fromkeys([*runner.views, *extra_views]))
    sim = {'mode': 'lockstep', 'task': task, 'action_mode': config.action_mode,
           'control_hz': config.control_hz, 'physics_hz': config.physics_hz,
           'cameras': views or ['']}
    camera = {}
    if runner.uses_images:
        height, width = runner.image_size
        sim.update(image_width=int(width), image_height=int(height))
        camera = {'cameras': list(runner.views), 'image_width': int(width),
                  'image_height': int(height)}
    return {'sim_node': sim, 'camera_node': camera}


def unused_nodes(runner: Policy) -> tuple[str, ...]:
    """Return the graph's nodes a policy run leaves out: the camera node for a state policy."""
    return () if runner.uses_images else ('camera_node',)


def simulator_speed_limits(control_hz: float) -> dict[str, float]:
    """
    Return safety-filter speed limits equal to what the simulator clamps a step to anyway.

    With these the filter shortens only steps the simulator would shorten
    too, so a policy behind it runs as it does in process.
    """
    limits = CommandedPose()
    return {'max_linear_speed': limits.max_delta * math.sqrt(3.0) * control_hz * 1.001,
            'max_angular_speed': limits.max_rot_delta * math.sqrt(3.0) * control_hz * 1.001}


@dataclass(frozen=True)
class OnlineFinetune:
    """How the policy node fine-tunes a residual run online (its ``finetune*`` parameters)."""

    #: Folder the fine-tuned run is written to (a resfit run resumes from it).
    out: str
    #: std_msgs/Float32 reward topic; None: the sparse /task/success.
    reward_topic: Optional[str] = None
    #: When a resfit run's updates run: 'background' or 'between_episodes'.
    updates: str = 'background'
    #: Off-policy updates per step (resfit runs); None: the run's own.
    utd: Optional[float] = None
    #: Folder of demonstration bags mixed into a resfit run's batches; None: none.
    demos: Optional[str] = None

    def ros_parameters(self) -> dict:
        """Return the policy node's parameter values for this fine-tuning."""
        return {'finetune': True, 'finetune_out': str(self.out),
                'reward_topic': str(self.reward_topic or ''),
                'finetune_updates': self.updates, 'finetune_utd': float(self.utd or 0.0),
                'finetune_demos': str(self.demos or '')}


def policy_node_parameters(policy: str, control_hz: float, options: PolicyOptions,
                           finetune: Optional[OnlineFinetune] = None) -> list[Parameter]:
    """Return the policy node's parameters for an evaluation (or fine-tuning) run."""
    values = {'policy': str(policy), **options.to_ros_parameters(), 'use_sim_time': True,
              'control_hz': float(control_hz), **simulator_speed_limits(control_hz)}
    if finetune is not None:
        values.update(finetune.ros_parameters())
    return [Parameter(name, value=value) for name, value in values.items()]


def evaluate_via_ros(task: str, policy: str, episodes: int, seed_start: int,
                     progress: bool = True, options: Optional[PolicyOptions] = None,
                     timeout: float = 60.0, context: Optional[Context] = None,
                     finetune: Optional[OnlineFinetune] = None,
                     extra_views: Sequence[str] = ()) -> dict:
    """
    Evaluate ``policy`` (shipped name or run folder) through the ROS graph; see the module doc.

    ``options`` become the policy node's parameters (their seed does not: the
    policy is reseeded to ``seed_start``).

    With ``finetune`` (a residual run) the policy node fine-tunes the
    residual online (PPO between episodes; a resfit run off-policy, in the
    background or between episodes) and the result adds the number of
    updates; the episodes then explore rather than evaluate. Its reward is
    the sparse ``/task/success``, or the Float32 ``finetune.reward_topic``
    (``/reward/dense``: the affordance node's KAGI reward, which needs the
    views it prompts with among ``extra_views``).

    Without ``context`` one is made on ``ROS_DOMAIN_ID`` (default 42) and shut
    down at the end; a given context is left running.
    """
    if episodes < 1:
        raise ValueError('episodes must be at least 1')
    limit = make_task(task).max_episode_steps
    control_hz = SimConfig().control_hz
    own_context = context is None
    if own_context:
        context = Context()
        rclpy.init(context=context, domain_id=int(os.environ.get('ROS_DOMAIN_ID', '42')))
    results: list[EpisodeResult] = []
    node = driver = None
    try:
        # The policy node loads the policy once; its runner then shapes the simulator graph.
        parameters = policy_node_parameters(policy, control_hz, options or PolicyOptions(),
                                            finetune)
        node = POLICY_NODE.load_factory()(context=context, parameter_overrides=parameters)
        runner = node.runner
        runner.check_compatible(task, runner.action_mode or 'delta')
        runner.reseed(seed_start)
        with GraphRunner('sim', graph_overrides(task, runner, extra_views), context,
                         without=unused_nodes(runner)):
            plans = finetune is not None and finetune.reward_topic == topics.DENSE_REWARD
            driver = PolicyLoopDriver(node, watch_plans=plans, context=context, timeout=timeout,
                                      control_hz=control_hz)
            bar = tqdm(range(seed_start, seed_start + episodes), disable=not progress,
                       desc=f'eval via ROS {task}/{policy}')
            for seed in bar:
                results.append(_episode(driver, task, seed, limit, plans))
                bar.set_postfix(success=f'{sum(r.success for r in results)}/{len(results)}')
            if node.learner is not None:
                node.end_learning_episode()  # the last episode's update
            result = summarise_episodes(task, policy, seed_start, results, runner)
            if node.learner is not None:
                result['finetune'] = {'out': str(finetune.out), 'updates': node.learner.updates,
                                      'episodes': node.learner.episodes}
    finally:
        for created in (driver, node):
            if created is not None:
                created.destroy_node()
        if own_context:
            context.try_shutdown()
    return {**result, 'via_ros': True}


def _episode(driver: PolicyLoopDriver, task: str, seed: int, limit: int,
             watch_plans: bool = False) -> EpisodeResult:
    """
    Run one episode through the graph (see the module doc).

    It ends once the policy has answered the final observation too: that
    observation's reward pays for the last executed action (fine-tuning), and
    the policy's step count no longer depends on whether its callback ran
    before the episode was summarised (one unexecuted step per episode).
    With ``watch_plans`` the first step waits for the affordance node's plan.
    """
    start = time.perf_counter()
    driver.set_active(False)
    mark = driver.plans_seen()
    obs = driver.reset(task=task, seed=seed)
    if watch_plans and not driver.wait_for_plan(mark):
        driver.get_logger().warning(f'no keypoint plan for seed {seed} within '
                                    f'{PLAN_TIMEOUT_S:.0f} s; the dense reward is sparse only')
    driver.set_active(True)
    total, steps = 0.0, 0
    while steps < limit and not obs.success:
        driver.wait_for_command(obs.stamp)
        obs = driver.advance()
        steps += 1
        total += obs.reward
    driver.wait_for_command(obs.stamp)
    return EpisodeResult(seed, bool(obs.success), steps, total, time.perf_counter() - start)
