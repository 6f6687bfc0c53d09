"""Vectorised environments: several simulators stepped in parallel worker processes."""

from __future__ import annotations

from functools import partial
from typing import Optional

import gymnasium as gym

from .config import SimConfig
from .gym_env import VisualRLEnv

# PyBullet clients must not be inherited through fork; workers start fresh.
CONTEXT = 'spawn'
#: Training episodes draw seeds from [TRAIN_SEED_FLOOR, TRAIN_SEED_FLOOR + TRAIN_SEED_SPAN), far
#: from the small evaluation and validation seeds used by convention.
TRAIN_SEED_FLOOR = 1 << 20
TRAIN_SEED_SPAN = 1 << 30


def make_vector_env(task: str, num_envs: int, obs_mode: str = 'state', seed: int = 0,
                    config: Optional[SimConfig] = None,
                    asynchronous: bool = True) -> gym.vector.VectorEnv:
    """
    Return ``num_envs`` copies of a task, already reset with seeds ``seed .. seed + n - 1``.

    Asynchronous envs run one worker process each (spawn context). Later
    unseeded ``reset()`` calls continue each copy's seeded random stream, so a
    run is reproducible from ``seed`` alone.
    """
    if num_envs < 1:
        raise ValueError(f'num_envs must be at least 1, got {num_envs}')
    factory = partial(VisualRLEnv, task=task, obs_mode=obs_mode, config=config)
    fns = [factory] * num_envs
    envs = (gym.vector.AsyncVectorEnv(fns, context=CONTEXT) if asynchronous
            else gym.vector.SyncVectorEnv(fns))
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    return envs
