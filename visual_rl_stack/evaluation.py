"""
Run a policy on a task over a range of seeds and summarise the outcome as JSON.

The evaluation runs in-process on the simulator core (no DDS), so it is fast
and deterministic for a given seed. Later issues add trained policies to
``POLICY_FACTORIES``; every policy follows the same small protocol.
"""

from dataclasses import asdict, dataclass
import datetime
import json
import os
from pathlib import Path
import platform
import time
from typing import Callable, Optional, Protocol

import numpy as np
from tqdm import tqdm

from .sim.config import SimConfig
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


def evaluate(task: str, policy_name: str, episodes: int, seed_start: int,
             config: Optional[SimConfig] = None, progress: bool = True) -> dict:
    """Evaluate ``policy_name`` on ``task`` for seeds ``seed_start .. seed_start+episodes-1``."""
    if policy_name not in POLICY_FACTORIES:
        raise ValueError(f'unknown policy {policy_name!r}; known: {sorted(POLICY_FACTORIES)}')
    if episodes < 1:
        raise ValueError('episodes must be at least 1')
    config = config or SimConfig(task=task, cameras=())
    sim = TabletopSim(config)
    try:
        policy = POLICY_FACTORIES[policy_name](task, config.action_mode, seed_start)
        seeds = range(seed_start, seed_start + episodes)
        bar = tqdm(seeds, desc=f'eval {task}/{policy_name}', disable=not progress)
        results = [run_episode(sim, policy, seed) for seed in bar]
    finally:
        sim.close()
    successes = sum(r.success for r in results)
    return {
        'task': task, 'policy': policy_name, 'episodes': episodes, 'seed_start': seed_start,
        'successes': successes, 'success_rate': successes / episodes,
        'mean_episode_length': float(np.mean([r.steps for r in results])),
        'per_episode': [asdict(r) for r in results],
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine_description(),
    }


def write_json(data: dict, path: Path) -> None:
    """Write ``data`` as JSON atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(json.dumps(data, indent=2) + '\n')
    tmp.replace(path)
