"""
Training windows for the diffusion policy, cut from the episodes of a :class:`BagDataset`.

There is one window per control step ``t`` of every episode:

- observations are steps ``t - n_obs + 1 .. t``; steps before the episode start
  repeat its first step;
- actions are steps ``t - n_obs + 1 .. t - n_obs + horizon``, so index 0 of the
  chunk is the time of the oldest observation (what ``predict_action_chunk``
  assumes); steps before the start repeat the first action and steps past the
  end repeat the last action, i.e. the policy learns to hold its final command
  once the demonstration is over (as in Chi et al. 2023).

Windows never cross episodes. Every episode is stored once as flat tensors
(state float32, action float32, images uint8) together with index tables, so
a batch is a single gather: :meth:`BCWindows.batch` is what the trainer uses;
``__getitem__`` serves the same windows one at a time for a ``DataLoader``.
"""

from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from visual_rl_stack.residual_policy.diffusion_bc.model.encoders import OBS_MODES


class BCWindows(Dataset):
    """
    Observation/action windows of every step of every episode (see the module doc).

    ``episodes`` are :class:`visual_rl_stack.data.dataset.Episode` objects (or anything
    with ``state``, ``action`` and ``images``). Images are kept only when
    ``obs_mode`` uses them; ``views`` picks and orders the cameras (default:
    the first episode's views, sorted).
    """

    def __init__(self, episodes: Sequence, n_obs_steps: int, horizon: int,
                 obs_mode: str = 'state', views: Optional[Sequence[str]] = None) -> None:
        """Concatenate the episodes and build the per-window index tables."""
        if obs_mode not in OBS_MODES:
            raise ValueError(f'obs_mode must be one of {OBS_MODES}, got {obs_mode!r}')
        if n_obs_steps < 1 or horizon < n_obs_steps:
            raise ValueError(f'need 1 <= n_obs_steps <= horizon, got n_obs_steps={n_obs_steps}, '
                             f'horizon={horizon}')
        episodes = [e for e in episodes if len(e.action)]
        if not episodes:
            raise ValueError('no episode with at least one step to cut windows from')
        self.obs_mode = obs_mode
        self.n_obs_steps = n_obs_steps
        self.horizon = horizon
        self.uses_images = 'image' in obs_mode
        if views is None:
            views = sorted(episodes[0].images) if self.uses_images else []
        self.views = list(views) if self.uses_images else []
        if self.uses_images:
            _check_views(episodes, self.views)
        obs_rows, action_rows, start = [], [], 0
        for episode in episodes:
            length = len(episode.action)
            steps = np.arange(length)[:, None]
            obs_rows.append(start + np.clip(steps + np.arange(1 - n_obs_steps, 1), 0,
                                            length - 1))
            action_rows.append(start + np.clip(
                steps + np.arange(1 - n_obs_steps, 1 - n_obs_steps + horizon), 0, length - 1))
            start += length
        self.obs_index = torch.from_numpy(np.concatenate(obs_rows))
        self.action_index = torch.from_numpy(np.concatenate(action_rows))
        self.states = torch.from_numpy(
            np.concatenate([np.asarray(e.state, dtype=np.float32) for e in episodes]))
        self.actions = torch.from_numpy(
            np.concatenate([np.asarray(e.action, dtype=np.float32) for e in episodes]))
        self.images = None
        if self.uses_images:
            self.images = torch.from_numpy(np.concatenate(
                [np.stack([e.images[v] for v in self.views], axis=1) for e in episodes]))

    def __len__(self) -> int:
        """Return the number of windows (= control steps over all episodes)."""
        return len(self.obs_index)

    @property
    def state_dim(self) -> int:
        """Return the size of one state vector."""
        return self.states.shape[1]

    @property
    def action_dim(self) -> int:
        """Return the size of one action."""
        return self.actions.shape[1]

    @property
    def image_size(self) -> Optional[tuple[int, int]]:
        """Return ``(height, width)`` of the images, or None without images."""
        return None if self.images is None else tuple(self.images.shape[2:4])

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Return the windows ``indices`` stacked as one batch.

        Keys: ``state`` (B, n_obs, S) float32, ``action`` (B, horizon, A) float32
        and, with images, ``images`` (B, n_obs, V, H, W, 3) uint8.
        """
        indices = torch.as_tensor(indices, dtype=torch.long)
        obs = self.obs_index[indices]
        out = {'state': self.states[obs], 'action': self.actions[self.action_index[indices]]}
        if self.images is not None:
            out['images'] = self.images[obs]
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Return one window (the keys of :meth:`batch` without the batch axis)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f'window {index} out of range (dataset has {len(self)})')
        return {k: v[0] for k, v in self.batch(torch.tensor([index % len(self)])).items()}


def _check_views(episodes: Sequence, views: list[str]) -> None:
    """Require at least one view and every view in every episode."""
    if not views:
        raise ValueError('obs_mode needs images, but the episodes have no camera views')
    for episode in episodes:
        missing = [v for v in views if v not in episode.images]
        if missing:
            name = getattr(episode, 'name', '?')
            raise ValueError(f'episode {name} has no camera views {missing}; '
                             f'it has {sorted(episode.images)}')
