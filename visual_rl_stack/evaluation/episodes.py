"""
Run a policy on a task over a range of seeds and summarise the outcome as JSON.

This is the one episode loop and the one result schema: ``vrl eval`` in
process and through ROS, the experts' checks and the trainers' validation all
produce :class:`EpisodeResult` rows summarised by :func:`summarise_episodes`.
The evaluation runs in-process on the simulator core (no DDS), so it is fast
and deterministic for a given seed. A policy is a name in ``CONTROLLERS``
(the scripted expert) or anything :func:`visual_rl_stack.core.policy.open_policy`
opens (a shipped model, a run folder of any registered kind). For a trained
policy the simulator gets the run's action mode and cameras (views and
resolution of the training images), and the result adds the policy's report
(``inference_latency_ms``, device, sampling settings).
"""

from dataclasses import asdict, dataclass, replace
import datetime
import time
from typing import Any, Callable, Optional

import numpy as np
from tqdm import tqdm
from visual_rl_stack.core.observation import sim_observation
from visual_rl_stack.core.policy import Controller, open_policy, Policy, PolicyOptions
from visual_rl_stack.core.records import machine_description
from visual_rl_stack.core.rewards import make_reward
from visual_rl_stack.sim.config import default_cameras, SimConfig
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.scene import TabletopSim


def _expert(task: str, action_mode: str, seed: int) -> Controller:
    return make_expert(task, action_mode, noise=0.0, rng=np.random.default_rng(seed))


#: Built-in controller name -> factory(task, action_mode, seed).
CONTROLLERS: dict[str, Callable[[str, str, int], Controller]] = {'expert': _expert}


@dataclass
class EpisodeResult:
    """Outcome of one evaluation episode."""

    seed: int
    success: bool
    steps: int
    episode_return: float
    wall_s: float
    #: The furthest the episode got through the instruction's plan (0-1), when measured.
    stage_progress: Optional[float] = None


def run_episode(sim: TabletopSim, controller: Controller, seed: int,
                progress: Optional[Any] = None) -> EpisodeResult:
    """
    Run one episode from ``seed`` until success or the step limit.

    ``progress`` is a registered reward with a ``progress`` (0-1) attribute,
    e.g. ``planner_stages`` (:mod:`visual_rl_stack.core.rewards`): the episode records
    the highest it reached, which tells apart failures that got nowhere from
    ones that failed at the last stage.
    """
    start = time.perf_counter()
    sim.reset(seed=seed)
    controller.reset()
    if progress is not None:
        progress.reset(sim, seed)
    total, success, steps, furthest = 0.0, False, 0, 0.0
    for steps in range(1, sim.max_episode_steps + 1):
        result = sim.step(controller.act(sim))
        total += result.reward
        if progress is not None:
            progress(sim, result)
            furthest = max(furthest, 1.0 if result.success else float(progress.progress))
        if result.success:
            success = True
            break
    return EpisodeResult(seed, success, steps, total, time.perf_counter() - start,
                         furthest if progress is not None else None)


def policy_sim_config(task: str, policy: Policy, config: Optional[SimConfig] = None) -> SimConfig:
    """
    Return sim settings for a trained policy: its action mode and, with images, its cameras.

    Without ``config`` the sim uses the run's action mode; with images the
    cameras become the policy's views (specs from ``config``, else the
    defaults) rendered at the training image size.
    """
    config = config or SimConfig(task=task, action_mode=policy.action_mode or 'delta',
                                 cameras=())
    if not policy.uses_images:
        return config
    specs = {spec.name: spec for spec in default_cameras()}
    specs.update({spec.name: spec for spec in config.cameras})
    unknown = [v for v in policy.views if v not in specs]
    if unknown:
        raise ValueError(f'the policy uses camera views {unknown} the simulator does not know; '
                         f'known: {sorted(specs)}')
    height, width = policy.image_size
    return replace(config, cameras=tuple(replace(specs[v], width=width, height=height)
                                         for v in policy.views))


def open_evaluated_policy(policy_name: str, options: PolicyOptions) -> Policy:
    """Open a trained policy for evaluation; ValueError also names the built-in controllers."""
    try:
        return open_policy(policy_name, options)
    except ValueError as error:
        raise ValueError(f'{error}; built-in policies: {", ".join(sorted(CONTROLLERS))}'
                         ) from None


def evaluate(task: str, policy_name: str, episodes: int, seed_start: int,
             config: Optional[SimConfig] = None, progress: bool = True,
             options: Optional[PolicyOptions] = None,
             stage_progress: Optional[str] = None) -> dict:
    """
    Evaluate ``policy_name`` on ``task`` for seeds ``seed_start .. seed_start+episodes-1``.

    ``policy_name`` is a key of ``CONTROLLERS`` or a policy source for
    :func:`open_policy`, opened with ``options`` (its seed defaults to ``seed_start``).
    ``stage_progress`` names a reward of the registry with a ``progress``
    (``planner_stages``) that every episode records (:func:`run_episode`).
    """
    tracker = None if stage_progress is None else make_reward(stage_progress, task)
    policy = None
    if policy_name not in CONTROLLERS:
        options = replace(options, seed=seed_start) if options else PolicyOptions(seed=seed_start)
        policy = open_evaluated_policy(policy_name, options)
    if episodes < 1:
        raise ValueError('episodes must be at least 1')
    if policy is not None:
        config = policy_sim_config(task, policy, config)
    config = config or SimConfig(task=task, cameras=())
    sim = TabletopSim(config)
    try:
        if policy is None:
            controller = CONTROLLERS[policy_name](task, config.action_mode, seed_start)
        else:
            controller = PolicyController(policy, sim)
        seeds = range(seed_start, seed_start + episodes)
        bar = tqdm(seeds, desc=f'eval {task}/{policy_name}', disable=not progress)
        results = [run_episode(sim, controller, seed, tracker) for seed in bar]
    finally:
        sim.close()
    return summarise_episodes(task, policy_name, seed_start, results, policy)


def evaluate_expert(task: str, episodes: int, seed_start: int = 0, noise: float = 0.0,
                    action_mode: str = 'delta', config: Optional[SimConfig] = None) -> dict:
    """
    Run the scripted expert on seeds ``seed_start ..``; return the evaluation JSON.

    Each episode gets a fresh expert whose noise generator is seeded by the
    episode's seed, so an episode replays alone; the result adds the noise,
    the action mode and the failed seeds.
    """
    sim = TabletopSim(replace(config or SimConfig(), task=task, action_mode=action_mode,
                              cameras=()))
    try:
        results = [run_episode(sim, make_expert(task, action_mode, noise,
                                                np.random.default_rng(seed)), seed)
                   for seed in range(seed_start, seed_start + episodes)]
    finally:
        sim.close()
    return {**summarise_episodes(task, 'expert', seed_start, results), 'noise': noise,
            'action_mode': action_mode, 'failed_seeds': [r.seed for r in results
                                                         if not r.success]}


def summarise_episodes(task: str, policy_name: str, seed_start: int,
                       results: list[EpisodeResult],
                       policy: Optional[Policy] = None) -> dict:
    """
    Return the evaluation JSON shared by ``vrl eval`` in process and through ROS.

    With a trained ``policy`` its :meth:`~visual_rl_stack.core.policy.Policy.report`
    is added (for diffusion policies: chunk-inference latency, device, executed
    steps per chunk, warm-start strength, None: off, and initial-noise scale).
    """
    successes = sum(r.success for r in results)
    result = {
        'task': task, 'policy': policy_name, 'episodes': len(results), 'seed_start': seed_start,
        'successes': successes, 'success_rate': successes / len(results),
        'mean_episode_length': float(np.mean([r.steps for r in results])),
        'mean_stage_progress': (None if any(r.stage_progress is None for r in results)
                                else float(np.mean([r.stage_progress for r in results]))),
        'per_episode': [asdict(r) for r in results],
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine_description(),
    }
    if policy is not None:
        result.update(policy.report())
    return result


class PolicyController:
    """Drive one sim with a trained :class:`Policy` (the evaluator's :class:`Controller`)."""

    def __init__(self, policy: Policy, sim: TabletopSim) -> None:
        """Check the run against the sim (task, action mode, state layout, cameras)."""
        policy.check_compatible(sim.config.task, sim.config.action_mode)
        missing = [v for v in policy.views if v not in sim.cameras]
        if missing:
            raise ValueError(f'the policy needs camera views {missing}; the simulator has '
                             f'{sorted(sim.cameras)}')
        self.policy = policy
        sim.reset(seed=0)
        sim_observation(sim, policy.state_labels)

    def reset(self) -> None:
        """Forget the previous episode."""
        self.policy.reset()

    def act(self, sim: TabletopSim) -> np.ndarray:
        """Return the next action for the sim's current step."""
        state, images = sim_observation(sim, self.policy.state_labels, self.policy.views,
                                        self.policy.image_size)
        return self.policy.act_from_observation(state, images)
