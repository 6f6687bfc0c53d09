"""
MAE training frames from demonstration bags: views, staged progress, key-horizons.

Every bag is decoded into control steps; its frames keep the configured views
(resized with OpenCV when recorded at another size), the staged progress of
each step (the plan of the bag's instruction judged on its recorded task
state, :mod:`..planning.recorded_states`) and the key-horizon each frame
belongs to (:mod:`..keyframes`). Clips for tube masking are drawn from inside
one key-horizon.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from visual_rl_stack.data.dataset import decode_episode, Episode, select_views

from ..keyframes import find_keyframes
from ..planning.instruction_parser import parse_instruction
from ..planning.recorded_states import episode_statuses


@dataclass
class Frames:
    """All frames of some episodes: ``N x V x S x S x 3`` images, progress, horizon and episode."""

    images: np.ndarray
    progress: np.ndarray
    horizon: np.ndarray
    episode: np.ndarray

    def __len__(self) -> int:
        """Return the number of frames."""
        return len(self.images)


def episode_frames(episode: Episode, task: str, views: Sequence[str], size: int,
                   episode_index: int, horizon_offset: int) -> Frames:
    """Return one decoded episode's frames (horizon ids from ``horizon_offset``)."""
    episode = select_views(episode, list(views))
    statuses = episode_statuses(episode, task, parse_instruction(episode.instruction))
    keyframes = find_keyframes(episode.field('joint_positions'),
                               episode.field('gripper_width')[:, 0], episode.control_hz)
    horizon = np.zeros(len(episode), dtype=np.int64)
    for h, (first, last) in enumerate(keyframes.horizons()):
        horizon[first:last + 1] = horizon_offset + h
    images = np.stack([np.stack([resized(frame, size) for frame in episode.images[v]])
                       for v in views], axis=1)
    return Frames(images, np.array([s.progress for s in statuses], dtype=np.float32), horizon,
                  np.full(len(episode), episode_index))


def resized(frame: np.ndarray, size: int) -> np.ndarray:
    """Return an RGB frame at ``size`` x ``size`` (area-averaged when shrinking)."""
    if frame.shape[:2] == (size, size):
        return frame
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def load_frames(bags: Sequence[Path], task: str, views: Sequence[str], size: int) -> Frames:
    """Return the frames of every bag, in order."""
    parts, offset = [], 0
    for i, bag in enumerate(bags):
        part = episode_frames(decode_episode(bag), task, views, size, i, offset)
        offset = int(part.horizon.max()) + 1
        parts.append(part)
    if not parts:
        raise ValueError('no episode bags to train on')
    return Frames(*(np.concatenate([getattr(p, f) for p in parts])
                    for f in ('images', 'progress', 'horizon', 'episode')))


def sample_clips(frames: Frames, batch: int, clip: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``batch x clip`` frame indices, each clip consecutive inside one key-horizon."""
    starts = rng.integers(0, len(frames), size=batch)
    indices = starts[:, None] + np.arange(clip)[None, :]
    indices = np.minimum(indices, len(frames) - 1)
    same = frames.horizon[indices] == frames.horizon[starts][:, None]
    # Past the horizon's end the clip holds its last frame.
    for row in range(batch):
        last = indices[row][same[row]][-1]
        indices[row][~same[row]] = last
    return indices
