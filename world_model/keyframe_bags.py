"""
Keyframes of recorded episode bags: found from the recorded state, checked against commands.

Each bag is decoded into control steps (:func:`visual_rl_stack.data.dataset.decode_episode`);
keyframes come from the joint positions and the measured finger width only
(:mod:`.keyframes`), as they would on a real arm. The recorded gripper
commands are the expert's gripper events: a keyframe within ``window``
frames of one counts as found, which gives a precision (of the keyframes
found for a gripper toggle) and a recall (of the events, by any keyframe).
A PNG strip per episode tiles the camera views at every keyframe.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from matplotlib.figure import Figure
import numpy as np
from visual_rl_stack.data.bags import BagError
from visual_rl_stack.data.dataset import decode_episode, Episode

from .keyframes import find_keyframes, GRIPPER, gripper_events, Keyframes, KeyframeSettings
from .keyframes import match_events


@dataclass
class EpisodeKeyframes:
    """The keyframes of one bag and how they match its gripper commands."""

    bag: str
    keyframes: Keyframes
    events: list[int]
    toggles_near_event: int
    events_found: int

    def to_dict(self) -> dict:
        """Return the JSON-ready record of the episode."""
        k = self.keyframes
        return {'bag': self.bag, 'frames': k.length, 'keyframes': list(k.indices),
                'reasons': list(k.reasons), 'horizons': k.horizons(),
                'gripper_events': self.events, 'toggles_near_event': self.toggles_near_event,
                'events_found': self.events_found}


def episode_keyframes(episode: Episode, settings: KeyframeSettings = KeyframeSettings(),
                      window: int = 2) -> EpisodeKeyframes:
    """Return the keyframes of a decoded episode, matched against its gripper commands."""
    keyframes = find_keyframes(episode.field('joint_positions'),
                               episode.field('gripper_width')[:, 0],
                               episode.control_hz, settings)
    events = gripper_events(episode.action[:, -1])
    precise, _ = match_events(keyframes.with_reason(GRIPPER), events, window)
    _, found = match_events(list(keyframes.indices), events, window)
    return EpisodeKeyframes(episode.name, keyframes, events, precise, found)


def summarise(episodes: list[EpisodeKeyframes], window: int) -> dict:
    """Return precision of gripper keyframes and recall of gripper events over all episodes."""
    toggles = sum(len(e.keyframes.with_reason(GRIPPER)) for e in episodes)
    events = sum(len(e.events) for e in episodes)
    return {
        'episodes': len(episodes), 'window_frames': window,
        'keyframes_per_episode': (float(np.mean([len(e.keyframes.indices) for e in episodes]))
                                  if episodes else None),
        'gripper_keyframes': toggles, 'gripper_events': events,
        'precision': sum(e.toggles_near_event for e in episodes) / toggles if toggles else None,
        'recall': sum(e.events_found for e in episodes) / events if events else None,
    }


def plot_strip(episode: Episode, found: EpisodeKeyframes, out_path: Path,
               views: Optional[list[str]] = None) -> bool:
    """Tile the views (rows) at every keyframe (columns) into a PNG; False without images."""
    views = [v for v in (views or sorted(episode.images)) if v in episode.images]
    if not views:
        return False
    indices = found.keyframes.indices
    figure = Figure(figsize=(1.6 * len(indices) + 0.4, 1.7 * len(views) + 0.5), dpi=100)
    axes = np.atleast_2d(figure.subplots(len(views), len(indices), squeeze=False))
    for column, (t, reason) in enumerate(zip(indices, found.keyframes.reasons)):
        for row, view in enumerate(views):
            ax = axes[row, column]
            ax.imshow(episode.images[view][t])
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f't={t} {reason}', fontsize=8)
            if column == 0:
                ax.set_ylabel(view, fontsize=8)
    figure.suptitle(f'{episode.name}: {len(indices)} keyframes', fontsize=9)
    figure.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, format='png')
    return True


def bag_keyframes(bag: Path, out_dir: Optional[Path], settings: KeyframeSettings,
                  window: int) -> EpisodeKeyframes:
    """Decode one bag, find its keyframes, draw its strip into ``out_dir`` (if given)."""
    try:
        episode = decode_episode(bag)
    except (BagError, KeyError) as error:
        raise BagError(f'{bag.name}: {error}') from error
    found = episode_keyframes(episode, settings, window)
    if out_dir is not None:
        plot_strip(episode, found, out_dir / f'{bag.name}_keyframes.png')
    return found
