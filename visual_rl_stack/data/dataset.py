"""
Turn a folder of episode bags into time-aligned arrays at the control rate, for training.

Alignment: the control steps are the header stamps of ``/joint_states``. Every
other stream is sampled and held: its value at step ``k`` is its latest message
stamped (header stamp, else log time) no later than half a control period after
step ``k``. Steps before the first or after the last arm command are dropped
(the final observation has no action). ``reward[k]`` and ``success[k]`` are what
followed action ``k``, i.e. the values published with step ``k + 1``.
Actions come from the command topics, or, when the bag has them, from the
expert's noise-free label topics (``/expert/...``, recorded by ``vrl collect
--noise``), so noisy demonstrations teach corrections without teaching noise.

Decoding bags is slow, so each bag is decoded once into an ``.npz`` under
``<folder>/.cache/``, keyed by the bag's file sizes and times and the format
version; a changed bag is decoded again.
"""

from dataclasses import dataclass, field, replace
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence
import warnings

import numpy as np
from tqdm import tqdm
from visual_rl_stack.core.image_buffers import image_to_array
from visual_rl_stack.core.observation import flatten_state, state_fields
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.msg_conversions import labelled_array_to_dict
from visual_rl_stack.ros.step_messages import twist_to_delta
from visual_rl_stack.sim.robot import MAX_GRIPPER_WIDTH

from .bags import bag_topics, BagError, decode, find_bags, INDEX_FILE, is_bag, read_messages

#: Bump when the cached arrays change meaning; old caches are then ignored.
CACHE_FORMAT = 3
CACHE_DIR = '.cache'
ACTION_TOPICS = {'delta': topics.ARM_DELTA_TWIST, 'absolute': topics.ARM_TARGET_POSE}


@dataclass
class Episode:
    """One episode as arrays over its T control steps (see the module doc for alignment)."""

    name: str
    instruction: str
    action_mode: str
    control_hz: float
    stamps: np.ndarray
    state: np.ndarray
    state_labels: list[tuple[str, int]]
    action: np.ndarray
    reward: np.ndarray
    success: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)
    depth: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        """Return the number of control steps."""
        return len(self.stamps)

    def field(self, name: str) -> np.ndarray:
        """Return the ``T x n`` state columns of field ``name`` (KeyError naming the fields)."""
        start = 0
        for label, size in self.state_labels:
            if label == name:
                return self.state[:, start:start + size]
            start += size
        raise KeyError(f'episode {self.name} has no state field {name!r}; it has '
                       f'{[label for label, _ in self.state_labels]}')

    @property
    def succeeded(self) -> bool:
        """Return whether the task was solved at the end of the episode."""
        return bool(len(self) and self.success[-1])


class BagDataset:
    """
    Episodes of a folder of bags, decoded once and cached.

    ``views=None`` keeps every camera found; otherwise only the listed views
    (each must be in every bag). Where the folder has an ``index.json`` (from
    ``vrl collect``) its episodes are used in its order and interrupted ones
    are skipped; else every bag in the folder is an episode.
    """

    def __init__(self, folder: Path, views: Optional[Sequence[str]] = None,
                 cache: bool = True) -> None:
        """Find the bags and make sure each one is decoded (or cached)."""
        self.folder = Path(folder)
        self.views = None if views is None else list(views)
        self.cache = cache
        self.bags = episode_bags(self.folder)
        #: Bags decoded by this instance (the others came from the cache).
        self.decoded: list[Path] = []
        self._episodes: list[Optional[Episode]] = [None] * len(self.bags)
        missing = [i for i, bag in enumerate(self.bags)
                   if not (cache and self._cache_path(bag).exists())]
        # disable=None: a bar on a terminal only, not in a log file (tqdm's TTY check)
        for i in tqdm(missing, desc='decode bags', unit='bag',
                      disable=True if len(missing) < 2 else None):
            self._episodes[i] = self._decode(self.bags[i])

    def __len__(self) -> int:
        """Return the number of episodes."""
        return len(self.bags)

    def episode(self, i: int) -> Episode:
        """Return episode ``i`` (from memory or the cache)."""
        if not 0 <= i < len(self):
            raise IndexError(f'episode {i} out of range (dataset has {len(self)})')
        loaded = self._episodes[i]
        if loaded is None:
            loaded = load_episode(self._cache_path(self.bags[i]))
        return select_views(loaded, self.views)

    def episodes(self) -> Iterator[Episode]:
        """Yield every episode in order."""
        return (self.episode(i) for i in range(len(self)))

    def arrays(self) -> dict[str, Any]:
        """
        Return every step of every episode concatenated, for training.

        Keys: ``state``, ``action``, ``reward``, ``success``, ``episode`` (index),
        ``step`` (within the episode), ``images`` and ``depth`` (view -> array).
        """
        episodes = list(self.episodes())
        if not episodes:
            raise BagError(f'no episodes in {self.folder}')
        views = list(episodes[0].images)
        return {
            'state': np.concatenate([e.state for e in episodes]),
            'action': np.concatenate([e.action for e in episodes]),
            'reward': np.concatenate([e.reward for e in episodes]),
            'success': np.concatenate([e.success for e in episodes]),
            'episode': np.concatenate([np.full(len(e), i) for i, e in enumerate(episodes)]),
            'step': np.concatenate([np.arange(len(e)) for e in episodes]),
            'images': {v: np.concatenate([e.images[v] for e in episodes]) for v in views},
            'depth': {v: np.concatenate([e.depth[v] for e in episodes]) for v in views},
        }

    def _cache_path(self, bag: Path) -> Path:
        """Return where the decoded arrays of ``bag`` are cached (key: format, files)."""
        files = sorted(p for p in bag.iterdir() if p.is_file())
        key = json.dumps([CACHE_FORMAT] + [(p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                           for p in files])
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return self.folder / CACHE_DIR / f'{bag.name}-{digest}.npz'

    def _decode(self, bag: Path) -> Optional[Episode]:
        """Decode ``bag``; cache it and return None, or keep it in memory without a cache."""
        episode = decode_episode(bag)
        self.decoded.append(bag)
        if not self.cache:
            return episode
        path = self._cache_path(bag)
        path.parent.mkdir(exist_ok=True)
        for stale in path.parent.glob(f'{bag.name}-*.npz'):
            stale.unlink()
        save_episode(episode, path)
        return None


def episode_bags(folder: Path) -> list[Path]:
    """
    Return the episode bags of ``folder``: from its index.json if any, else all bags.

    Index entries marked ``discarded`` (failed demonstrations dropped by
    ``collect(successes_only=True)``) have no bag and are skipped.
    """
    index_path = Path(folder) / INDEX_FILE
    if not index_path.exists():
        return find_bags(folder)
    entries = [e for e in json.loads(index_path.read_text())['episodes']
               if not e.get('discarded')]
    for entry in entries:
        if entry['interrupted']:
            warnings.warn(f'skipping interrupted episode {entry["bag"]} in {folder}')
    bags = [Path(folder) / e['bag'] for e in entries if not e['interrupted']]
    if not bags:
        raise BagError(f'{index_path} lists no complete episodes')
    for bag in bags:
        if not is_bag(bag):
            raise BagError(f'{index_path} lists {bag.name}, which is not a bag')
    return bags


def decode_episode(bag: Path) -> Episode:
    """Read one bag and align its streams at the control steps (see the module doc)."""
    available = bag_topics(bag)
    modes = [mode for mode, topic in ACTION_TOPICS.items() if topic in available]
    if len(modes) != 1:
        raise BagError(f'bag {bag} must hold exactly one of the command topics '
                       f'{sorted(ACTION_TOPICS.values())}')
    mode, command = modes[0], ACTION_TOPICS[modes[0]]
    views = camera_views(available)
    # Demonstrations with injected noise carry the expert's intended commands: learn those.
    label_topics = {topic: topics.expert_label_topic(topic)
                    for topic in (command, topics.GRIPPER_COMMAND)}
    if not all(label in available for label in label_topics.values()):
        label_topics = {topic: topic for topic in label_topics}
    wanted = sorted(set(label_topics) | set(label_topics.values()))
    streams = read_streams(bag, [topics.JOINT_STATES, topics.EE_POSE, topics.TASK_STATE,
                                 topics.TASK_SUCCESS, topics.TASK_REWARD,
                                 topics.TASK_INSTRUCTION, *wanted]
                           + [t for v in views for t in (topics.color_topic(v),
                                                         topics.depth_topic(v))])
    for topic in (topics.JOINT_STATES, topics.EE_POSE, *label_topics.values()):
        if topic not in streams:
            raise BagError(f'bag {bag} has no {topic} messages')
    steps = streams[topics.JOINT_STATES].times
    if len(steps) < 2:
        raise BagError(f'bag {bag} has fewer than 2 control steps ({topics.JOINT_STATES})')
    period = int(np.median(np.diff(steps)))
    aligned = Aligned(bag, streams, steps, period // 2)
    first, last = streams[command].times[[0, -1]]
    rows = np.flatnonzero((steps >= first - period // 2) & (steps <= last + period // 2))
    rows = rows[aligned.present(label_topics[topics.GRIPPER_COMMAND], rows)]
    if not len(rows):
        raise BagError(f'bag {bag} has no control step with both an arm and a gripper command')
    after = np.minimum(rows + 1, len(steps) - 1)
    state, labels = state_vectors(aligned.at(topics.JOINT_STATES, rows),
                                  aligned.at(topics.EE_POSE, rows),
                                  aligned.at(topics.TASK_STATE, rows, default=None))
    instruction = aligned.at(topics.TASK_INSTRUCTION, rows[-1:], default=None)[0]
    return Episode(
        name=bag.name, instruction=instruction.data if instruction else '',
        action_mode=mode, control_hz=1e9 / period, stamps=steps[rows] * 1e-9,
        state=state, state_labels=labels,
        action=actions(mode, aligned.at(label_topics[command], rows),
                       aligned.at(label_topics[topics.GRIPPER_COMMAND], rows), period * 1e-9),
        reward=np.array([m.data if m else 0.0 for m in aligned.at(
            topics.TASK_REWARD, after, default=None)], dtype=np.float32),
        success=np.array([bool(m and m.data) for m in aligned.at(
            topics.TASK_SUCCESS, after, default=None)], dtype=bool),
        images={v: np.stack([image_to_array(m) for m in aligned.at(topics.color_topic(v), rows)])
                for v in views},
        depth={v: np.stack([image_to_array(m) for m in aligned.at(topics.depth_topic(v), rows)])
               for v in views})


@dataclass
class Stream:
    """The messages of one topic in time order; time = header stamp, else log time (ns)."""

    times: np.ndarray
    values: list


def read_streams(bag: Path, wanted: Sequence[str]) -> dict[str, Stream]:
    """Decode the ``wanted`` topics of ``bag`` into streams; topics without messages are absent."""
    collected: dict[str, tuple[list, list]] = {}
    for message in read_messages(bag, wanted):
        value = decode(message)
        header = getattr(value, 'header', None)
        time = (header.stamp.sec * 1_000_000_000 + header.stamp.nanosec if header
                else message.log_time)
        times, values = collected.setdefault(message.topic, ([], []))
        times.append(time)
        values.append(value)
    streams = {}
    for topic, (times, values) in collected.items():
        order = np.argsort(times, kind='stable')
        streams[topic] = Stream(np.asarray(times, dtype=np.int64)[order],
                                [values[i] for i in order])
    return streams


class Aligned:
    """Sample-and-hold view of streams at control steps, with a tolerance (ns)."""

    def __init__(self, bag: Path, streams: dict[str, Stream], steps: np.ndarray,
                 tolerance: int) -> None:
        """Index every stream at every step once."""
        self.bag = bag
        self.streams = streams
        self.index = {topic: np.searchsorted(s.times, steps + tolerance, side='right') - 1
                      for topic, s in streams.items()}

    def present(self, topic: str, rows: np.ndarray) -> np.ndarray:
        """Return a mask of the ``rows`` at which ``topic`` has a value."""
        return self.index[topic][rows] >= 0

    _REQUIRED = object()

    def at(self, topic: str, rows: np.ndarray, default: Any = _REQUIRED) -> list:
        """
        Return the message of ``topic`` in effect at each step in ``rows``.

        Steps without one get ``default``; without a default they are an error.
        """
        if topic not in self.streams:
            indices = np.full(len(rows), -1)
        else:
            indices = self.index[topic][rows]
        if default is self._REQUIRED and np.any(indices < 0):
            raise BagError(f'bag {self.bag}: no {topic} message at or before some control steps')
        values = self.streams[topic].values if topic in self.streams else []
        return [values[i] if i >= 0 else default for i in indices]


def camera_views(available: dict[str, str]) -> list[str]:
    """Return the cameras of a bag: those with both a colour and a depth topic."""
    return sorted(t.split('/')[1] for t in available
                  if t == topics.color_topic(t.split('/')[1])
                  and topics.depth_topic(t.split('/')[1]) in available)


def state_vectors(joints: list, poses: list, task_states: list
                  ) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """
    Build the state vector of each step and its (label, size) layout.

    Layout: ee position (3), ee quaternion xyzw (4), gripper width (sum of the
    finger joints, 1), joint positions (message order), task state fields in
    label order.
    """
    rows, labels = [], []
    for joint, pose, task in zip(joints, poses, task_states):
        fields = state_fields(pose_position(pose), pose_orientation(pose), joint.name,
                              joint.position,
                              labelled_array_to_dict(task) if task is not None else None)
        row, labels = flatten_state(fields)
        rows.append(row)
    sizes = {len(r) for r in rows}
    if len(sizes) != 1:
        raise BagError(f'state size changes during the episode: {sorted(sizes)}')
    return np.stack(rows).astype(np.float64), labels


def pose_position(msg: Any) -> np.ndarray:
    """Return the position of a PoseStamped."""
    p = msg.pose.position
    return np.array([p.x, p.y, p.z])


def pose_orientation(msg: Any) -> np.ndarray:
    """Return the xyzw orientation of a PoseStamped."""
    q = msg.pose.orientation
    return np.array([q.x, q.y, q.z, q.w])


def actions(mode: str, commands: list, grippers: list, period: float) -> np.ndarray:
    """Turn arm and gripper commands into the simulator's action layout (see sim/scene.py)."""
    fraction = np.array([[g.data / MAX_GRIPPER_WIDTH] for g in grippers])
    if mode == 'absolute':
        arm = np.array([np.concatenate([pose_position(c), pose_orientation(c)])
                        for c in commands])
    else:
        arm = np.array([twist_to_delta([c.twist.linear.x, c.twist.linear.y, c.twist.linear.z,
                                        c.twist.angular.x, c.twist.angular.y,
                                        c.twist.angular.z], 1.0 / period)
                        for c in commands])
    return np.hstack([arm, fraction])


def select_views(episode: Episode, views: Optional[list[str]]) -> Episode:
    """Return ``episode`` with only ``views`` (all if None); a missing view is an error."""
    if views is None:
        return episode
    missing = [v for v in views if v not in episode.images]
    if missing:
        raise BagError(f'episode {episode.name} has no camera views {missing}; '
                       f'it has {sorted(episode.images)}')
    return replace(episode, images={v: episode.images[v] for v in views},
                   depth={v: episode.depth[v] for v in views})


def save_episode(episode: Episode, path: Path) -> None:
    """Write an episode's arrays to ``path`` (npz, written to a temp file then renamed)."""
    arrays = {f'images/{v}': a for v, a in episode.images.items()}
    arrays.update({f'depth/{v}': a for v, a in episode.depth.items()})
    meta = {'name': episode.name, 'instruction': episode.instruction,
            'action_mode': episode.action_mode, 'control_hz': episode.control_hz,
            'state_labels': episode.state_labels}
    tmp = path.with_suffix('.tmp.npz')
    np.savez(tmp, meta=np.array(json.dumps(meta)), stamps=episode.stamps, state=episode.state,
             action=episode.action, reward=episode.reward, success=episode.success, **arrays)
    tmp.replace(path)


def load_episode(path: Path) -> Episode:
    """Read an episode written by :func:`save_episode`."""
    with np.load(path) as data:
        meta = json.loads(str(data['meta']))
        return Episode(
            name=meta['name'], instruction=meta['instruction'],
            action_mode=meta['action_mode'], control_hz=meta['control_hz'],
            state_labels=[tuple(x) for x in meta['state_labels']], stamps=data['stamps'],
            state=data['state'], action=data['action'], reward=data['reward'],
            success=data['success'],
            images={k.split('/', 1)[1]: data[k] for k in data.files if k.startswith('images/')},
            depth={k.split('/', 1)[1]: data[k] for k in data.files if k.startswith('depth/')})
