"""
The environment residual RL trains in: the task simulator seen through the BC state layout.

:class:`ResidualTaskEnv` steps a :class:`TabletopSim` with physical actions
(what the base policy outputs) and observes the state vector the BC policy
was trained on (:func:`visual_rl_stack.core.observation.sim_observation`), so base, residual and
evaluation share one definition of the state. The reward is any reward of
the registry (:mod:`visual_rl_stack.core.rewards`), opened by name with
options, so this module imports no other learner; the default is ResiP's
sparse reward. A reward function with a ``reset(sim, seed)`` method is told
of every new episode and its seed, after the simulator has reset.

Seeds: ``reset(seed=s)`` starts episode ``s`` exactly (evaluation); unseeded
resets draw episode seeds at or above :data:`TRAIN_SEED_FLOOR`, so training
episodes never coincide with the evaluation and validation seeds, which
are small numbers by convention.

:func:`make_residual_envs` runs copies in worker processes with gymnasium's
same-step autoreset: the observation returned with ``terminated`` or
``truncated`` is already the next episode's first.
"""

from functools import partial
from typing import Any, Optional

import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
import numpy as np
from visual_rl_stack.core.observation import sim_observation
from visual_rl_stack.core.rewards import check_reward, make_reward
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.vector_env import CONTEXT, TRAIN_SEED_FLOOR, TRAIN_SEED_SPAN


class ResidualTaskEnv(gym.Env):
    """One task in physical action units with the BC state as observation (module doc)."""

    def __init__(self, task: str, action_mode: str = 'delta', reward: str = 'sparse',
                 max_episode_steps: Optional[int] = None,
                 reward_options: Optional[dict[str, Any]] = None):
        """Create a camera-less simulator for ``task``."""
        self.sim = TabletopSim(SimConfig(task=task, action_mode=action_mode, cameras=(),
                                         max_episode_steps=max_episode_steps))
        self.reward_fn = make_reward(reward, task, reward_options)
        low, high = self.sim.action_space_bounds()
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32))
        self.sim.reset(seed=0)
        size = sim_observation(self.sim)[0].shape
        self.observation_space = spaces.Box(-np.inf, np.inf, size, np.float32)

    @property
    def max_episode_steps(self) -> int:
        """Return the step limit of an episode."""
        return self.sim.max_episode_steps

    def reset(self, *, seed: Optional[int] = None,
              options: Optional[dict[str, Any]] = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start episode ``seed``, or a fresh training seed when None."""
        super().reset(seed=seed)
        episode_seed = (seed if seed is not None
                        else TRAIN_SEED_FLOOR + int(self.np_random.integers(TRAIN_SEED_SPAN)))
        self.sim.reset(seed=episode_seed)
        if hasattr(self.reward_fn, 'reset'):
            self.reward_fn.reset(self.sim, episode_seed)
        return sim_observation(self.sim)[0], {'episode_seed': episode_seed, 'success': False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a physical action for one control step."""
        result = self.sim.step(np.asarray(action, dtype=np.float64))
        reward = float(self.reward_fn(self.sim, result))
        info = {'success': bool(result.success)}
        return (sim_observation(self.sim)[0], reward, bool(result.terminated),
                bool(result.truncated), info)

    def close(self) -> None:
        """Release the simulator."""
        self.sim.close()


def make_residual_envs(task: str, num_envs: int, action_mode: str = 'delta',
                       reward: str = 'sparse', max_episode_steps: Optional[int] = None,
                       asynchronous: bool = True,
                       reward_options: Optional[dict[str, Any]] = None) -> gym.vector.VectorEnv:
    """
    Return ``num_envs`` :class:`ResidualTaskEnv` copies with same-step autoreset (not reset yet).

    Asynchronous envs run one spawned worker process each; ``reward_options``
    go to a registered reward's factory in each of them.
    """
    if num_envs < 1:
        raise ValueError(f'num_envs must be at least 1, got {num_envs}')
    reward = check_reward(reward, task, reward_options)  # fail here, not in every worker
    factory = partial(ResidualTaskEnv, task, action_mode, reward, max_episode_steps,
                      reward_options)
    fns = [factory] * num_envs
    if asynchronous:
        return gym.vector.AsyncVectorEnv(fns, context=CONTEXT,
                                         autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
