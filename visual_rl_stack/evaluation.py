"""
Run a policy on a task over a range of seeds and summarise the outcome as JSON.

The evaluation runs in-process on the simulator core (no DDS), so it is fast
and deterministic for a given seed. A policy is a name in ``POLICY_FACTORIES``
or the path of a behaviour-cloning run (or its checkpoint folder), which runs
through :class:`visual_rl_stack.residual_policy.bc_runner.BCPolicyRunner`;
every policy follows the same small protocol. For a BC run the simulator gets
the run's action mode and cameras (views and resolution of the training
images), and the result adds ``inference_latency_ms``.
"""

from dataclasses import asdict, dataclass, replace
import datetime
import json
import os
from pathlib import Path
import platform
import time
from typing import Any, Callable, Optional, Protocol

import numpy as np
from tqdm import tqdm

from .sim.config import default_cameras, SimConfig
from .sim.scene import TabletopSim


class Policy(Protocol):
    """What the evaluator needs of a policy: a reset and an action per control step."""

    def reset(self) -> None:
        """Forget the previous episode."""

    def act(self, sim: TabletopSim) -> np.ndarray:
        """Return the next action in the simulator's action layout."""


def _expert(task: str, action_mode: str, seed: int) -> Policy:
    from .sim.experts import make_expert
    return make_expert(task, action_mode, noise=0.0, rng=np.random.default_rng(seed))


#: Policy name -> factory(task, action_mode, seed).
POLICY_FACTORIES: dict[str, Callable[[str, str, int], Policy]] = {'expert': _expert}


@dataclass
class EpisodeResult:
    """Outcome of one evaluation episode."""

    seed: int
    success: bool
    steps: int
    episode_return: float
    wall_s: float


def machine_description() -> dict:
    """Describe the machine a number was measured on (for docs/results.md)."""
    gpu = None
    try:
        import torch
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {'cpu_cores': os.cpu_count(), 'processor': platform.processor() or platform.machine(),
            'gpu': gpu, 'python': platform.python_version()}


def run_episode(sim: TabletopSim, policy: Policy, seed: int) -> EpisodeResult:
    """Run one episode from ``seed`` until success or the step limit."""
    start = time.perf_counter()
    sim.reset(seed=seed)
    policy.reset()
    total, success, steps = 0.0, False, 0
    for steps in range(1, sim.max_episode_steps + 1):
        result = sim.step(policy.act(sim))
        total += result.reward
        if result.success:
            success = True
            break
    return EpisodeResult(seed, success, steps, total, time.perf_counter() - start)


def load_bc_runner(policy_name: str, seed: int = 0, device: str = 'auto',
                   num_inference_steps: Optional[int] = None,
                   action_steps: Optional[int] = None,
                   warm_start: Optional[float] = None,
                   noise_scale: Optional[float] = None) -> Any:
    """
    Return the runner of a shipped model name or a BC or residual run (or checkpoint) path.

    Raises ValueError naming the known policies when ``policy_name`` is none of them.
    """
    from .models import resolve_policy
    try:
        path = resolve_policy(policy_name)
    except ValueError as error:
        raise ValueError(f'{error}; built-in policies: {", ".join(sorted(POLICY_FACTORIES))}'
                         ) from None
    from .residual_policy.residual_agent import open_policy_runner
    return open_policy_runner(path, device, num_inference_steps, seed, action_steps,
                              warm_start, noise_scale)


def bc_sim_config(task: str, runner: Any, config: Optional[SimConfig] = None) -> SimConfig:
    """
    Return sim settings for a BC runner: its action mode and, with images, its cameras.

    Without ``config`` the sim uses the run's action mode; with images the
    cameras become the policy's views (specs from ``config``, else the
    defaults) rendered at the training image size.
    """
    config = config or SimConfig(task=task, action_mode=runner.action_mode or 'delta',
                                 cameras=())
    if not runner.uses_images:
        return config
    specs = {spec.name: spec for spec in default_cameras()}
    specs.update({spec.name: spec for spec in config.cameras})
    unknown = [v for v in runner.views if v not in specs]
    if unknown:
        raise ValueError(f'the policy uses camera views {unknown} the simulator does not know; '
                         f'known: {sorted(specs)}')
    height, width = runner.image_size
    return replace(config, cameras=tuple(replace(specs[v], width=width, height=height)
                                         for v in runner.views))


def evaluate(task: str, policy_name: str, episodes: int, seed_start: int,
             config: Optional[SimConfig] = None, progress: bool = True, device: str = 'auto',
             num_inference_steps: Optional[int] = None,
             action_steps: Optional[int] = None,
             warm_start: Optional[float] = None,
             noise_scale: Optional[float] = None) -> dict:
    """
    Evaluate ``policy_name`` on ``task`` for seeds ``seed_start .. seed_start+episodes-1``.

    ``policy_name`` is a key of ``POLICY_FACTORIES`` or the path of a BC run
    or checkpoint folder (``device``, ``num_inference_steps``,
    ``action_steps``, ``warm_start`` and ``noise_scale`` apply to it).
    """
    runner = None
    if policy_name not in POLICY_FACTORIES:
        runner = load_bc_runner(policy_name, seed_start, device, num_inference_steps,
                                action_steps, warm_start, noise_scale)
    if episodes < 1:
        raise ValueError('episodes must be at least 1')
    if runner is not None:
        config = bc_sim_config(task, runner, config)
    config = config or SimConfig(task=task, cameras=())
    sim = TabletopSim(config)
    try:
        if runner is None:
            policy = POLICY_FACTORIES[policy_name](task, config.action_mode, seed_start)
        else:
            from .residual_policy.bc_runner import BCSimPolicy
            policy = BCSimPolicy(runner, sim)
        seeds = range(seed_start, seed_start + episodes)
        bar = tqdm(seeds, desc=f'eval {task}/{policy_name}', disable=not progress)
        results = [run_episode(sim, policy, seed) for seed in bar]
    finally:
        sim.close()
    return summarise_episodes(task, policy_name, seed_start, results, runner)


def summarise_episodes(task: str, policy_name: str, seed_start: int,
                       results: list[EpisodeResult], runner: Any = None) -> dict:
    """
    Return the evaluation JSON shared by ``vrl eval`` in process and through ROS.

    With a BC ``runner`` its chunk-inference latency, device, executed steps
    per chunk, warm-start strength (None: off) and initial-noise scale are added.
    """
    successes = sum(r.success for r in results)
    result = {
        'task': task, 'policy': policy_name, 'episodes': len(results), 'seed_start': seed_start,
        'successes': successes, 'success_rate': successes / len(results),
        'mean_episode_length': float(np.mean([r.steps for r in results])),
        'per_episode': [asdict(r) for r in results],
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine_description(),
    }
    if runner is not None:
        result['inference_latency_ms'] = runner.latency_summary_ms()
        result['device'] = str(runner.device)
        result['action_steps'] = runner.action_steps
        result['warm_start'] = runner.warm_start
        result['noise_scale'] = runner.noise_scale
    return result


def write_json(data: dict, path: Path) -> None:
    """Write ``data`` as JSON atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(json.dumps(data, indent=2) + '\n')
    tmp.replace(path)
