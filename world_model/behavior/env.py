"""
The environment the world-model agent acts in: camera views, normalised delta actions.

:class:`ViewTaskEnv` is the task's :class:`visual_rl_stack.sim.gym_env.VisualRLEnv`
with the world model's views rendered at its size, observed as one
``V x S x S x 3`` array beside the state vector (the agent reads only its
proprioceptive head; the rest is there for the reward and for diagnostics).
The reward is the sparse task reward or another of the registry
(``planner_stages``) opened by name (:mod:`visual_rl_stack.core.rewards`),
told of every reset.
Unseeded resets draw training seeds at or above
:data:`visual_rl_stack.sim.vector_env.TRAIN_SEED_FLOOR`.
"""

from dataclasses import replace
from functools import partial
from typing import Any, Optional, Sequence

import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
import numpy as np
from visual_rl_stack.core.rewards import check_reward, make_reward, SPARSE
from visual_rl_stack.sim.config import default_cameras, SimConfig
from visual_rl_stack.sim.gym_env import VisualRLEnv
from visual_rl_stack.sim.scene import StepResult
from visual_rl_stack.sim.vector_env import CONTEXT, TRAIN_SEED_FLOOR, TRAIN_SEED_SPAN


def view_config(task: str, views: Sequence[str], size: int) -> SimConfig:
    """Return the task's config with only ``views`` (of the default cameras) at ``size``."""
    cameras = {c.name: c for c in default_cameras()}
    unknown = [v for v in views if v not in cameras]
    if unknown:
        raise ValueError(f'unknown camera views {unknown}; the simulator has {sorted(cameras)}')
    return SimConfig(task=task, cameras=tuple(replace(cameras[v], width=size, height=size)
                                              for v in views))


class ViewTaskEnv(gym.Env):
    """One task seen through the world model's views (module doc)."""

    def __init__(self, task: str, views: Sequence[str], size: int, reward: str = 'sparse'):
        """Create the simulator; ``reward`` is a registered reward's name."""
        self.env = VisualRLEnv(task, obs_mode='state+image', config=view_config(task, views, size))
        self.views = tuple(views)
        self.reward_fn = None if reward == SPARSE else make_reward(reward, task)
        self.action_space = self.env.action_space
        state = self.env.observation_space['state']
        self.observation_space = spaces.Dict({
            'images': spaces.Box(0, 255, (len(views), size, size, 3), np.uint8),
            'state': state})

    def _observation(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Stack the views in order beside the state."""
        return {'images': np.stack([raw[v] for v in self.views]), 'state': raw['state']}

    def reset(self, *, seed: Optional[int] = None,
              options: Optional[dict[str, Any]] = None) -> tuple[dict, dict[str, Any]]:
        """Start episode ``seed``, or a fresh training seed when None."""
        super().reset(seed=seed)
        episode_seed = (seed if seed is not None
                        else TRAIN_SEED_FLOOR + int(self.np_random.integers(TRAIN_SEED_SPAN)))
        raw, info = self.env.reset(seed=episode_seed)
        if self.reward_fn is not None:
            self.reward_fn.reset(self.env.sim, episode_seed)
        return self._observation(raw), {**info, 'episode_seed': episode_seed}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        """Apply a normalised delta action for one control step."""
        raw, reward, terminated, truncated, info = self.env.step(action)
        if self.reward_fn is not None:
            result = StepResult(reward, bool(info['success']), terminated, truncated, info)
            reward = float(self.reward_fn(self.env.sim, result))
        return self._observation(raw), reward, terminated, truncated, {
            'success': bool(info['success'])}

    def close(self) -> None:
        """Release the simulator."""
        self.env.close()


def make_view_envs(task: str, views: Sequence[str], size: int, reward: str, num_envs: int,
                   asynchronous: bool = True) -> gym.vector.VectorEnv:
    """Return ``num_envs`` copies (one spawned worker each) with same-step autoreset."""
    if num_envs < 1:
        raise ValueError(f'num_envs must be at least 1, got {num_envs}')
    reward = check_reward(reward, task)  # an unknown name fails here, not in every worker
    fns = [partial(ViewTaskEnv, task, tuple(views), size, reward)] * num_envs
    if asynchronous:
        return gym.vector.AsyncVectorEnv(fns, context=CONTEXT,
                                         autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
