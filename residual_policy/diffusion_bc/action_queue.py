"""
Receding-horizon bookkeeping: which actions of a predicted chunk to execute, and the obs window.

Indexing convention: a chunk of ``horizon`` actions is predicted from the
``n_obs_steps`` latest observations at times ``t - n_obs_steps + 1 .. t``, and
chunk index 0 is the time of the oldest of them. The action for the current
step ``t`` is therefore index ``n_obs_steps - 1``; the queue executes indices
``[n_obs_steps - 1, n_obs_steps - 1 + n_action_steps)`` open loop, then asks
for a new plan. Chunks may carry leading batch axes (``(..., horizon, A)``,
numpy or torch); the time axis is always the second to last.
"""

from collections import deque
from typing import Deque, Optional, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]


class ActionQueue:
    """
    Hold the executable part of the latest chunk and hand out one action per step.

    With ``warm_start`` the queue also remembers the whole chunk, so that
    :meth:`warm_start_chunk` can give the policy the not-yet-executed plan,
    re-indexed to the next planning time, as a starting point for sampling.
    """

    def __init__(self, n_action_steps: int, n_obs_steps: int = 1, warm_start: bool = False):
        if n_action_steps < 1 or n_obs_steps < 1:
            raise ValueError('n_action_steps and n_obs_steps must be >= 1')
        self.n_action_steps = n_action_steps
        self.n_obs_steps = n_obs_steps
        self.warm_start = warm_start
        self._chunk: Optional[Array] = None
        self._cursor = 0

    def needs_plan(self) -> bool:
        """Return True when every queued action has been executed (or none was pushed)."""
        return self._chunk is None or self._cursor >= self.n_action_steps

    def push_chunk(self, chunk: Array) -> None:
        """Queue the executable slice of a new ``(..., horizon, A)`` chunk, replacing the old."""
        first = self.n_obs_steps - 1
        if chunk.shape[-2] < first + self.n_action_steps:
            raise ValueError(f'chunk of {chunk.shape[-2]} steps is shorter than the '
                             f'{first + self.n_action_steps} this queue needs')
        self._chunk = chunk
        self._cursor = 0

    def pop(self) -> Array:
        """Return the next action ``(..., A)``; raises IndexError when a new plan is needed."""
        if self.needs_plan():
            raise IndexError('action queue is empty; push a new chunk first')
        action = self._chunk[..., self.n_obs_steps - 1 + self._cursor, :]
        self._cursor += 1
        return action

    def __len__(self) -> int:
        """Return how many actions are still queued."""
        return 0 if self._chunk is None else self.n_action_steps - self._cursor

    def reset(self) -> None:
        """Forget the current chunk (call at episode start)."""
        self._chunk = None
        self._cursor = 0

    def warm_start_chunk(self) -> Optional[Array]:
        """
        Return the previous chunk shifted to the next planning time, or None.

        The next plan starts ``n_action_steps`` later, so its index ``i`` is the
        previous chunk's index ``i + n_action_steps``; the missing end is padded
        by repeating the last planned action. None when warm start is off, no
        chunk was pushed, or the chunk is not fully executed yet.
        """
        if not self.warm_start or self._chunk is None or not self.needs_plan():
            return None
        tail = self._chunk[..., self.n_action_steps:, :]
        pad_shape = (*tail.shape[:-2], self.n_action_steps, tail.shape[-1])
        last = tail[..., -1:, :]
        if isinstance(tail, torch.Tensor):
            return torch.cat([tail, last.expand(pad_shape)], dim=-2)
        return np.concatenate([tail, np.broadcast_to(last, pad_shape)], axis=-2)


class ObservationHistory:
    """
    Keep the last ``n_obs_steps`` observations, stacked as ``(n_obs_steps, ...)`` per key.

    At episode start the window is padded with copies of the first observation,
    matching how training windows are padded at the start of a demonstration.
    """

    def __init__(self, n_obs_steps: int):
        if n_obs_steps < 1:
            raise ValueError('n_obs_steps must be >= 1')
        self.n_obs_steps = n_obs_steps
        self._frames: Deque[dict] = deque(maxlen=n_obs_steps)

    def append(self, observation: dict) -> None:
        """Add one observation dict (e.g. ``{'state': (S,), 'images': (V, H, W, 3)}``)."""
        if not self._frames:
            self._frames.extend([observation] * (self.n_obs_steps - 1))
        self._frames.append(observation)

    def stacked(self) -> dict:
        """Return ``{key: array (n_obs_steps, ...)}``, oldest first, ready for a batch axis."""
        if not self._frames:
            raise IndexError('no observation yet; append one first')
        return {key: np.stack([np.asarray(f[key]) for f in self._frames])
                for key in self._frames[0]}

    def reset(self) -> None:
        """Forget the history (call at episode start)."""
        self._frames.clear()
