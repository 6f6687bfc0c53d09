"""
n-step transitions and the replay buffer they are sampled from.

A stored transition is ``(state, base, action, reward, next_state, next_base,
discount)`` in the base's normalised units: ``reward`` is the discounted sum
of up to ``n`` rewards, ``next_*`` the observation (and the base's action
there) that the target bootstraps from, and ``discount`` is ``gamma**k`` for
the ``k`` steps summed, or 0 when the episode terminated (success) inside
them. A time limit is not a termination: a truncated episode bootstraps from
its last observation, since the state carries no clock.

:class:`NStepAssembler` turns per-step results of parallel environments into
such transitions; :class:`ReplayBuffer` keeps the newest ``capacity``
(a ring) and :func:`sample_mixed` draws a batch with a fixed share from a
second, fixed buffer of demonstrations.
"""

from collections import deque
from pathlib import Path
from typing import Optional

import numpy as np

#: The arrays of a transition batch, in order.
FIELDS = ('state', 'base', 'action', 'reward', 'next_state', 'next_base', 'discount')
Batch = dict[str, np.ndarray]


def widths(state_dim: int, action_dim: int) -> dict[str, tuple[int, ...]]:
    """Return the trailing shape of every field."""
    return {'state': (state_dim,), 'base': (action_dim,), 'action': (action_dim,),
            'reward': (), 'next_state': (state_dim,), 'next_base': (action_dim,),
            'discount': ()}


def stack_transitions(rows: list[tuple], state_dim: int, action_dim: int) -> Batch:
    """Stack ``rows`` of :data:`FIELDS` tuples into float32 arrays (empty arrays for no rows)."""
    shapes = widths(state_dim, action_dim)
    if not rows:
        return {k: np.zeros((0, *shapes[k]), np.float32) for k in FIELDS}
    return {k: np.asarray([row[i] for row in rows], np.float32).reshape(-1, *shapes[k])
            for i, k in enumerate(FIELDS)}


class NStepAssembler:
    """Per-environment windows of the last ``n`` steps, emitted as n-step transitions."""

    def __init__(self, num_envs: int, n: int, gamma: float, state_dim: int, action_dim: int):
        self.n, self.gamma = n, gamma
        self.dims = (state_dim, action_dim)
        self.pending: list[deque] = [deque() for _ in range(num_envs)]

    def clear(self) -> None:
        """Drop the steps of episodes in progress (after the environments were reset)."""
        for window in self.pending:
            window.clear()

    def add(self, state: np.ndarray, base: np.ndarray, action: np.ndarray,
            reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
            next_state: np.ndarray, next_base: np.ndarray) -> Batch:
        """
        Add one step of every environment; return the transitions it completes.

        ``next_state``/``next_base`` are what follows the step in its own
        episode: for an episode that ended, its last observation (not the
        next episode's first, which same-step autoreset hands back).
        """
        rows = []
        for i, window in enumerate(self.pending):
            window.append((state[i], base[i], action[i], float(reward[i])))
            if terminated[i] or truncated[i]:
                rows += self._drain(window, next_state[i], next_base[i], bool(terminated[i]))
            elif len(window) == self.n:
                rows.append(self._emit(window, next_state[i], next_base[i], False))
                window.popleft()
        return stack_transitions(rows, *self.dims)

    def flush(self, env: int, next_state: np.ndarray, next_base: np.ndarray) -> Batch:
        """
        Cut environment ``env``'s window short; return its steps' transitions.

        They bootstrap from ``next_state``/``next_base``, the observation that
        followed the window's last step (an episode that ended without a
        success, or a step whose reward was lost).
        """
        return stack_transitions(self._drain(self.pending[env], next_state, next_base, False),
                                 *self.dims)

    def _drain(self, window: deque, next_state: np.ndarray, next_base: np.ndarray,
               terminated: bool) -> list[tuple]:
        """Emit every step still in ``window`` (each with the rewards after it) and empty it."""
        rows = []
        while window:
            rows.append(self._emit(window, next_state, next_base, terminated))
            window.popleft()
        return rows

    def _emit(self, window: deque, next_state: np.ndarray, next_base: np.ndarray,
              terminated: bool) -> tuple:
        """Return the transition that starts at the window's first step."""
        rewards = np.array([step[3] for step in window])
        summed = float(np.sum(rewards * self.gamma ** np.arange(len(rewards))))
        discount = 0.0 if terminated else self.gamma ** len(rewards)
        state, base, action, _ = window[0]
        return (state, base, action, summed, next_state, next_base, discount)


def episode_transitions(state: np.ndarray, base: np.ndarray, action: np.ndarray,
                        reward: np.ndarray, terminated: bool, final_state: np.ndarray,
                        final_base: np.ndarray, n: int, gamma: float) -> Batch:
    """
    Return the n-step transitions of one whole recorded episode (demonstrations).

    ``state``/``base``/``action``/``reward`` are its ``T`` steps; ``final_*``
    the observation after the last step (used only when not ``terminated``).
    """
    assembler = NStepAssembler(1, n, gamma, state.shape[1], action.shape[1])
    parts = []
    for t in range(len(state)):
        last = t == len(state) - 1
        following = (final_state, final_base) if last else (state[t + 1], base[t + 1])
        parts.append(assembler.add(
            state[t:t + 1], base[t:t + 1], action[t:t + 1], reward[t:t + 1],
            np.array([last and terminated]), np.array([last and not terminated]),
            following[0][None], following[1][None]))
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}


class ReplayBuffer:
    """The newest ``capacity`` transitions in preallocated arrays (a ring)."""

    def __init__(self, capacity: int, state_dim: int, action_dim: int):
        self.capacity = capacity
        self.dims = (state_dim, action_dim)
        self.data = {k: np.zeros((capacity, *shape), np.float32)
                     for k, shape in widths(state_dim, action_dim).items()}
        self.size = 0
        self.cursor = 0

    def __len__(self) -> int:
        """Return how many transitions are stored."""
        return self.size

    def add(self, batch: Batch) -> None:
        """Append a batch of transitions, overwriting the oldest once full."""
        count = len(batch['reward'])
        rows = (self.cursor + np.arange(count)) % self.capacity
        for key in FIELDS:
            self.data[key][rows] = batch[key]
        self.cursor = int((self.cursor + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def sample(self, count: int, rng: np.random.Generator) -> Batch:
        """Return ``count`` transitions drawn uniformly with replacement."""
        rows = rng.integers(0, self.size, size=count)
        return {k: v[rows] for k, v in self.data.items()}

    def save(self, path: Path) -> None:
        """Write the stored transitions to ``path`` (.npz) atomically."""
        tmp = path.with_name(f'.{path.name}.tmp.npz')
        order = (np.arange(self.size) + (self.cursor if self.size == self.capacity else 0)) \
            % self.capacity  # oldest first, so a reload appends in the same order
        np.savez(tmp, **{k: v[order] for k, v in self.data.items()})
        tmp.replace(path)

    def load(self, path: Path) -> None:
        """Replace the contents with a buffer written by :meth:`save` (same widths)."""
        with np.load(path) as saved:
            batch = {k: saved[k] for k in FIELDS}
        expected = widths(*self.dims)
        for key, shape in expected.items():
            if batch[key].shape[1:] != shape:
                raise ValueError(f'replay buffer {path} holds {key} of width '
                                 f'{batch[key].shape[1:]}, this learner needs {shape}')
        self.size, self.cursor = 0, 0
        self.add({k: v[-self.capacity:] for k, v in batch.items()})


def sample_mixed(online: ReplayBuffer, demos: Optional[ReplayBuffer], count: int,
                 demo_ratio: float, rng: np.random.Generator) -> Batch:
    """Return ``count`` transitions, ``round(count * demo_ratio)`` of them demonstrations."""
    has_demos = demos is not None and len(demos) > 0
    if not len(online) and not has_demos:
        raise ValueError('nothing to sample: the replay buffer is empty and there are no '
                         'demonstrations')
    from_demos = int(round(count * demo_ratio)) if has_demos else 0
    if not len(online):
        from_demos = count
    parts = [online.sample(count - from_demos, rng)] if count > from_demos else []
    if from_demos:
        parts.append(demos.sample(from_demos, rng))
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
