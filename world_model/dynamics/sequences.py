"""
What the RSSM and the actor learn from: per-step embeddings, actions, rewards, continuation.

A step's embedding is the frozen MAE's per-view features of its camera
frames beside the proprioception (end-effector position and quaternion,
finger width: the first 8 values of the state contract,
:func:`visual_rl_stack.core.observation.state_fields`). Actions are the
normalised delta actions in [-1, 1]^7 of :mod:`visual_rl_stack.sim.gym_env`.
``rewards[t]`` and ``continues[t]`` are what action t earned and whether the
episode went on after it (an episode ends on success).

Demonstration bags are relabelled with the reward the agent trains on, one
of the registry's :data:`visual_rl_stack.core.rewards.RECORDED` rewards:
``sparse`` (the recorded success) or ``planner_stages``, the staged progress
of the bag's instruction judged on its recorded task state and paid as a
potential (``gamma * phi' - phi`` with ``phi = alpha * progress``), exactly
as the simulator's ``planner_stages`` reward pays online, so offline and
online rewards agree. Bags with the expert's noise-free labels give those as the actions.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm
from visual_rl_stack.core.rewards import (combine, PLANNER_STAGES, RECORDED, reward_offering,
                                          SPARSE)
from visual_rl_stack.data.dataset import decode_episode, Episode
from visual_rl_stack.sim.gym_env import delta_scale, physical_to_delta

from ..mae.data import episode_frames
from ..mae.model import MultiViewMAE

#: ee_position (3), ee_orientation (4), gripper_width (1): the head of every state vector.
PROPRIO_FIELDS = (('ee_position', 3), ('ee_orientation', 4), ('gripper_width', 1))
PROPRIO_SIZE = sum(size for _, size in PROPRIO_FIELDS)


def proprioception(state: np.ndarray) -> np.ndarray:
    """Return the proprioceptive head of state vectors (``... x S`` -> ``... x 8``)."""
    state = np.asarray(state, dtype=np.float32)
    if state.shape[-1] < PROPRIO_SIZE:
        raise ValueError(f'a state vector has at least {PROPRIO_SIZE} values, got '
                         f'{state.shape[-1]}')
    return state[..., :PROPRIO_SIZE]


class Embedder:
    """Turns camera frames and proprioception into embeddings with a frozen MAE."""

    def __init__(self, mae: MultiViewMAE, chunk: int = 64):
        """Use ``mae`` (put in eval mode) in chunks of ``chunk`` frames."""
        self.mae, self.chunk = mae.eval(), chunk

    @property
    def views(self) -> tuple[str, ...]:
        """Return the views, in the order :meth:`__call__` wants them."""
        return tuple(self.mae.config.views)

    @property
    def image_size(self) -> int:
        """Return the pixels per view side."""
        return self.mae.config.image_size

    @property
    def size(self) -> int:
        """Return the size of one embedding."""
        return self.mae.feature_size + PROPRIO_SIZE

    def __call__(self, images: np.ndarray, proprio: np.ndarray) -> np.ndarray:
        """Return ``N x size`` embeddings of ``N x V x S x S x 3`` uint8 frames."""
        parts, device = [], self.mae.position.device
        for start in range(0, len(images), self.chunk):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + self.chunk]))
            batch = batch.to(device).permute(0, 1, 4, 2, 3).float() / 255.0
            parts.append(self.mae.features(batch).cpu())
        features = torch.cat(parts).numpy() if parts else np.zeros((0, self.mae.feature_size))
        return np.concatenate([features, proprio], axis=1).astype(np.float32)


@dataclass
class EpisodeSequence:
    """One episode's T steps: embeddings, actions, rewards, continuation flags."""

    embeds: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    continues: np.ndarray
    success: bool
    demo: bool

    def __len__(self) -> int:
        """Return the number of steps."""
        return len(self.embeds)


def recorded_reward(name: str) -> str:
    """Return today's name of a reward demonstrations can be relabelled with; ValueError else."""
    return reward_offering(name, RECORDED)


def relabelled_rewards(success: np.ndarray, progress: np.ndarray, reward: str,
                       alpha: float = 0.5, gamma: float = 0.99) -> np.ndarray:
    """Return each action's reward under ``reward`` (module doc) from success and progress."""
    reward = recorded_reward(reward)
    sparse = success.astype(np.float32)
    if reward == SPARSE:
        return sparse
    if reward != PLANNER_STAGES:
        raise ValueError(f'no relabelling of recorded episodes with the {reward} reward yet')
    phi = alpha * np.asarray(progress, dtype=np.float64)
    following = np.append(phi[1:], phi[-1:])
    return np.array([combine(s, gamma * b - a) for s, a, b in zip(sparse, phi, following)],
                    dtype=np.float32)


def demo_sequence(episode: Episode, task: str, embedder: Embedder, reward: str,
                  alpha: float = 0.5, gamma: float = 0.99) -> tuple[EpisodeSequence, np.ndarray]:
    """Return a decoded demonstration's sequence and the key-horizon id of every step."""
    if episode.action_mode != 'delta':
        raise ValueError(f'episode {episode.name} commands {episode.action_mode} actions; the '
                         "world model learns delta actions (collect with action_mode 'delta')")
    frames = episode_frames(episode, task, embedder.views, embedder.image_size, 0, 0)
    embeds = embedder(frames.images, proprioception(episode.state))
    success = episode.success.astype(bool)
    return EpisodeSequence(
        embeds, physical_to_delta(episode.action, delta_scale()),
        relabelled_rewards(success, frames.progress, reward, alpha, gamma),
        (~success).astype(np.float32), bool(success.any()), True), frames.horizon


def demo_sequences(bags: Sequence[Path], task: str, embedder: Embedder, reward: str,
                   show_progress: bool = True) -> tuple[list[EpisodeSequence], list[int]]:
    """Return every bag's sequence and the lengths (steps) of all their key-horizons."""
    sequences, horizons = [], []
    for bag in tqdm(bags, desc='embed demonstrations', unit='bag', disable=not show_progress):
        sequence, horizon = demo_sequence(decode_episode(bag), task, embedder, reward)
        sequences.append(sequence)
        horizons += np.unique(horizon, return_counts=True)[1].tolist()
    return sequences, horizons


@dataclass(frozen=True)
class EmbedNormalizer:
    """Per-dimension mean and spread of the embeddings, fitted on the demonstrations."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, sequences: Sequence[EpisodeSequence]) -> 'EmbedNormalizer':
        """
        Fit on every step of ``sequences``.

        A spread is at least a tenth of the median one: the demonstrator
        holds the gripper pointing down (its quaternion barely moves), and
        an exploring agent that tilts it must not produce embeddings
        hundreds of spreads away.
        """
        embeds = np.concatenate([s.embeds for s in sequences])
        std = embeds.std(0)
        return cls(embeds.mean(0), np.maximum(std, 0.1 * np.median(std) + 1e-6))

    def __call__(self, embeds: np.ndarray) -> np.ndarray:
        """Return normalised embeddings."""
        return ((embeds - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        """Return the statistics as JSON-ready lists."""
        return {'embed_mean': self.mean.tolist(), 'embed_std': self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> 'EmbedNormalizer':
        """Rebuild from :meth:`to_dict`."""
        return cls(np.asarray(data['embed_mean'], np.float32),
                   np.asarray(data['embed_std'], np.float32))


class SequenceBuffer:
    """Episodes to sample fixed-length windows from (demonstrations and online ones)."""

    def __init__(self, normalizer: EmbedNormalizer, capacity: int = 2000):
        """Keep at most ``capacity`` online episodes beside every demonstration."""
        self.normalizer, self.capacity = normalizer, capacity
        self.episodes: list[EpisodeSequence] = []

    def add(self, episode: EpisodeSequence) -> None:
        """Add an episode; the oldest online one goes when the buffer is full."""
        self.episodes.append(episode)
        online = [i for i, e in enumerate(self.episodes) if not e.demo]
        if len(online) > self.capacity:
            del self.episodes[online[0]]

    def steps(self, demo: Optional[bool] = None) -> int:
        """Return the steps held (of demonstrations, online episodes, or all)."""
        return sum(len(e) for e in self.episodes if demo is None or e.demo == demo)

    def sample(self, batch: int, length: int, rng: np.random.Generator,
               demo: Optional[bool] = None) -> dict[str, torch.Tensor]:
        """
        Return ``batch x length`` windows, each inside one episode of at least ``length`` steps.

        Keys: ``embeds`` (normalised), ``actions``, ``prev_actions`` (the
        action before each step; zero at an episode's start), ``rewards``,
        ``continues``. ``demo`` limits the draw to demonstrations (True) or
        online episodes (False).
        """
        pool = [e for e in self.episodes if len(e) >= length and (demo is None or e.demo == demo)]
        if not pool:
            raise ValueError(f'no episode of at least {length} steps to sample from')
        weights = np.array([len(e) - length + 1 for e in pool], dtype=np.float64)
        picks = rng.choice(len(pool), size=batch, p=weights / weights.sum())
        keys = ('embeds', 'actions', 'prev_actions', 'rewards', 'continues')
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for pick in picks:
            episode = pool[pick]
            start = int(rng.integers(0, len(episode) - length + 1))
            window = slice(start, start + length)
            before = np.concatenate([np.zeros((1, episode.actions.shape[1]), np.float32),
                                     episode.actions[:-1]])
            parts['embeds'].append(self.normalizer(episode.embeds[window]))
            parts['actions'].append(episode.actions[window])
            parts['prev_actions'].append(before[window])
            parts['rewards'].append(episode.rewards[window])
            parts['continues'].append(episode.continues[window])
        return {k: torch.from_numpy(np.stack(v).astype(np.float32)) for k, v in parts.items()}
