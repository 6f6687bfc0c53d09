"""
The KAGI reward inside residual RL workers: views rendered at reset, one query per episode.

Registered as ``kagi`` in :mod:`visual_rl_stack.core.rewards`, so the residual
environment opens it by name. At every reset the fixed views are rendered
from the worker's simulator (which has no cameras of its own), the backend is
asked once, and the plan is cached by ``(seed, instruction)``: validation
replays the same seeds, and a seed's scene is the same every time. Each step
then pays the sparse success when there is one, else the dense progress of
the end effector along the waypoints (:class:`.episode_affordance.EpisodeAffordance`).
"""

from pathlib import Path
import time
from typing import Any, Optional, Sequence

from visual_rl_stack.sim.scene import StepResult, TabletopSim

from .backends import backend_opener
from .dense_reward import RewardSettings
from .episode_affordance import EpisodeAffordance, Plan
from .frames import render_views

#: The backend the reward uses unless told otherwise (the shipped keypoint model).
DEFAULT_BACKEND = 'keypoint_net'


class KagiReward:
    """A residual-RL reward function: ``reset(sim, seed)`` then ``(sim, result) -> reward``."""

    def __init__(self, episode: EpisodeAffordance, width: int = 128, height: int = 128):
        """Render ``episode.views`` at ``width`` x ``height`` for the queries."""
        self.episode = episode
        self.size = (width, height)
        self.plans: dict[tuple[int, str], Plan] = {}
        #: Seconds spent in each reset (render, query, lift), to measure the overhead.
        self.reset_seconds: list[float] = []

    def reset(self, sim: TabletopSim, seed: Optional[int] = None) -> None:
        """Plan the new episode (from the cache for a seed seen before)."""
        start = time.perf_counter()
        instruction = sim.instruction
        self.episode.new_episode(instruction, None if seed is None else f'seed{seed}')
        key = None if seed is None else (int(seed), instruction)
        plan = self.plans.get(key) if key is not None else None
        if plan is None:
            frames = render_views(sim, self.episode.views, *self.size)
            plan = self.episode.make_plan(frames, instruction, self.episode.episode_id)
            if key is not None:
                self.plans[key] = plan
        self.episode.install(plan)
        self.episode.step(sim.robot_state().ee_position)
        self.reset_seconds.append(time.perf_counter() - start)

    @property
    def level(self) -> float:
        """Return the dense progress phi after the latest step (0 without a plan)."""
        return self.episode.level

    @property
    def planned(self) -> bool:
        """Return whether this episode's query gave waypoints (else the reward is sparse)."""
        return self.episode.plan is not None and self.episode.plan.ok

    @property
    def diagnostic(self) -> str:
        """Return what the episode's plan is, or why there is none."""
        return 'not reset yet' if self.episode.plan is None else self.episode.plan.diagnostic

    def __call__(self, sim: TabletopSim, result: StepResult) -> float:
        """Return the sparse success reward when non-zero, else the dense progress."""
        sparse = 1.0 if result.success else 0.0
        return self.episode.step(sim.robot_state().ee_position, sparse)


def kagi_reward(task: Optional[str] = None, backend: str = DEFAULT_BACKEND,
                model: Optional[str] = None, views: Sequence[str] = ('front', 'side'),
                width: int = 128, height: int = 128, log_path: Optional[str] = None,
                **settings: Any) -> KagiReward:
    """
    Return a fresh KAGI reward (the ``kagi`` entry of the reward registry).

    ``backend`` and ``model`` (a local model folder; None for a backend that
    ships its weights) choose the keypoint model; ``settings`` are
    :class:`.dense_reward.RewardSettings` fields (alpha, epsilon, potential).
    ``task`` is accepted for the registry's signature; the instruction comes
    from the simulator at every reset.
    """
    episode = EpisodeAffordance(backend_opener(backend, model or None), backend, views,
                                RewardSettings(**settings),
                                log_path=None if log_path is None else Path(log_path))
    return KagiReward(episode, width, height)
