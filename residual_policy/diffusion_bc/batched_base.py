"""
The frozen base policy for many environments at once, as residual RL queries it.

:class:`BatchedBasePolicy` keeps, per environment, the observation window and
the executable slice of the latest chunk (same indexing as
:mod:`.action_queue`), and samples new chunks only for the environments whose
queue has run out, in one batched DDIM call. Environments reset at different
times, so their chunk boundaries drift apart; batching whoever needs a plan
keeps every environment on exactly the schedule a single-environment runner
would follow. States are raw (the dataset layout); actions come back raw.
"""

import time
from typing import Optional

import numpy as np
import torch

from .model.diffusion_policy import DiffusionPolicy


class BatchedBasePolicy:
    """Receding-horizon execution of a state-based diffusion policy over ``num_envs`` envs."""

    def __init__(self, policy: DiffusionPolicy, num_envs: int,
                 num_inference_steps: Optional[int] = 4, seed: int = 0,
                 noise_scale: float = 1.0, action_steps: Optional[int] = None) -> None:
        """
        Wrap a loaded policy; every environment starts with an empty window.

        ``noise_scale`` multiplies the initial noise of each chunk (0: a
        deterministic base, so the residual is the only source of exploration);
        ``action_steps`` overrides the actions executed per chunk.
        """
        if policy.config.obs_mode != 'state':
            raise ValueError('residual RL needs a state-based base policy (obs state), got '
                             f'obs {policy.config.obs_mode!r}; distil to images afterwards')
        self.policy = policy.eval()
        config = policy.config
        self.num_envs = num_envs
        self.num_inference_steps = num_inference_steps
        self.noise_scale = noise_scale
        self.n_obs = config.n_obs_steps
        self.n_act = config.executed_steps(action_steps)
        self.generator = torch.Generator().manual_seed(seed)
        self.history = np.zeros((num_envs, self.n_obs, config.state_dim), np.float32)
        self.chunks = np.zeros((num_envs, config.horizon, config.action_dim), np.float32)
        self.cursor = np.full(num_envs, self.n_act, dtype=np.int64)
        self.fresh = np.ones(num_envs, dtype=bool)
        #: Batched chunk inferences made and seconds spent in them.
        self.plans = 0
        self.plan_seconds = 0.0

    def reset(self, mask: Optional[np.ndarray] = None) -> None:
        """Start new episodes in the environments where ``mask`` is true (all when None)."""
        mask = np.ones(self.num_envs, bool) if mask is None else np.asarray(mask, bool)
        self.fresh[mask] = True
        self.cursor[mask] = self.n_act

    def act(self, states: np.ndarray, envs: Optional[np.ndarray] = None) -> np.ndarray:
        """
        Append each env's new state and return its base action ``(N, A)``.

        ``states`` is ``(N, S)`` for every env, or one row per index in
        ``envs`` to advance only those (e.g. the last observation of an
        episode that hit its time limit, before the env is reset).
        """
        envs = np.arange(self.num_envs) if envs is None else np.asarray(envs, np.int64)
        states = np.asarray(states, np.float32)
        if states.shape != (len(envs), self.history.shape[2]):
            raise ValueError(f'states must have shape {(len(envs), self.history.shape[2])}, '
                             f'got {states.shape}')
        fresh = self.fresh[envs]
        # A fresh window is padded with its first observation, as in training.
        self.history[envs[fresh]] = states[fresh, None]
        self.history[envs[~fresh]] = np.concatenate(
            [self.history[envs[~fresh], 1:], states[~fresh, None]], axis=1)
        self.fresh[envs] = False
        planning = envs[self.cursor[envs] >= self.n_act]
        if len(planning):
            self._plan(planning)
        actions = self.chunks[envs, self.n_obs - 1 + self.cursor[envs]]
        self.cursor[envs] += 1
        return actions

    def _plan(self, envs: np.ndarray) -> None:
        """Sample new chunks for ``envs`` in one batch."""
        started = time.perf_counter()
        chunk = self.policy.predict_action_chunk(
            {'state': self.history[envs]}, num_inference_steps=self.num_inference_steps,
            generator=self.generator, noise_scale=self.noise_scale)
        self.chunks[envs] = chunk.float().cpu().numpy()
        self.cursor[envs] = 0
        self.plans += 1
        self.plan_seconds += time.perf_counter() - started
