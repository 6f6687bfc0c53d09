"""
Collect scripted-expert demonstrations as rosbag2 bags, in-process and without DDS.

Each episode becomes one MCAP bag holding the topics and message types the
simulator graph publishes, plus the commands the expert sent, serialised by
rclpy so the bytes equal what the recorder node would store. Log times are sim
times. ``index.json`` next to the bags lists the episodes; it is rewritten
(atomically) after every episode, so an interrupted run leaves it consistent.
"""

from dataclasses import replace
from datetime import datetime, timezone
import json
import os
from pathlib import Path
import shutil
import sys
from typing import Callable, Optional, Sequence

from builtin_interfaces.msg import Time
import numpy as np
from std_msgs.msg import String
from tqdm import tqdm
from visual_rl_stack.core.policy import Controller
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.msg_conversions import stamp_from_seconds
from visual_rl_stack.ros.step_messages import command_messages, Messages, observation_messages
from visual_rl_stack.sim.config import default_cameras, SimConfig
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.scene import TabletopSim

from .bags import INDEX_FILE, ros_type_name, serialize
from .recorder import BagRecorder, DEFAULT_VIEWS

#: Version of the index.json layout.
INDEX_FORMAT = 1


def episode_name(task: str, seed: int) -> str:
    """Return the bag folder name of one episode."""
    return f'{task}_seed{seed:04d}'


def stamp_nanoseconds(stamp: Time) -> int:
    """Return a ``builtin_interfaces/Time`` as integer nanoseconds (a bag log time)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def write_messages(recorder: BagRecorder, messages: Messages, stamp: Time) -> None:
    """Serialise and store messages, logged at ``stamp`` (sim time)."""
    log_time = stamp_nanoseconds(stamp)
    for topic, msg in messages:
        recorder.write(topic, ros_type_name(msg), serialize(msg), log_time)


def record_episode(sim: TabletopSim, seed: int, noise: float, recorder: BagRecorder,
                   approach_jitter: float = 0.0, policy: Optional[Controller] = None) -> dict:
    """
    Run the expert (or ``policy``) for one episode on ``sim`` and record it.

    Returns the episode's index entry.
    """
    config = sim.config
    sim.reset(seed=seed)
    if policy is not None:
        policy.reset()
        expert = policy
    else:
        expert = make_expert(config.task, config.action_mode, noise,
                             np.random.default_rng(seed), approach_jitter)
    stamp = stamp_from_seconds(sim.sim_time)
    write_messages(recorder, iter([(topics.TASK_INSTRUCTION, String(data=sim.instruction))]),
                   stamp)
    result = None
    while result is None or not (result.terminated or result.truncated):
        stamp = stamp_from_seconds(sim.sim_time)
        write_messages(recorder, observation_messages(sim, stamp), stamp)
        action = expert.act(sim)
        write_messages(recorder, command_messages(action, config.action_mode,
                                                  config.control_hz, stamp), stamp)
        if noise > 0:
            labels = command_messages(expert.clean_action, config.action_mode,
                                      config.control_hz, stamp)
            write_messages(recorder, ((topics.expert_label_topic(t), m) for t, m in labels),
                           stamp)
        result = sim.step(action)
    stamp = stamp_from_seconds(sim.sim_time)
    write_messages(recorder, observation_messages(sim, stamp), stamp)
    return {'seed': seed, 'bag': recorder.path.name, 'success': bool(result.success),
            'steps': sim.step_count, 'interrupted': False}


def sim_config(task: str, views: Sequence[str], action_mode: str, width: int,
               height: int) -> SimConfig:
    """Return the simulator settings of a collection run (only the wanted views, resized)."""
    cameras = {spec.name: spec for spec in default_cameras()}
    unknown = [v for v in views if v not in cameras]
    if unknown:
        raise ValueError(f'unknown camera views {unknown}; known: {list(cameras)}')
    return SimConfig(task=task, action_mode=action_mode, cameras=tuple(
        replace(cameras[v], width=width, height=height) for v in views))


def write_index(path: Path, index: dict) -> None:
    """Write ``index.json`` atomically (temp file, then rename)."""
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps(index, indent=2) + '\n')
    os.replace(tmp, path)


def load_index(path: Path, header: dict) -> dict:
    """Return the existing index at ``path`` (same collection settings) or a new one."""
    if not path.exists():
        return header | {'episodes': []}
    index = json.loads(path.read_text())
    settings = ('task', 'action_mode', 'control_hz', 'views', 'width', 'height')
    different = [k for k in settings if index.get(k) != header[k]]
    if different:
        raise ValueError(f'{path} was collected with other settings ({", ".join(different)}); '
                         'use another output folder')
    return index


def collect(task: str, episodes: int, out_dir: Path, seed_start: int = 0,
            views: Sequence[str] = DEFAULT_VIEWS, noise: float = 0.0,
            action_mode: str = 'delta', width: int = 128, height: int = 128,
            approach_jitter: float = 0.0,
            policy_factory: Optional[Callable[[TabletopSim], Controller]] = None,
            successes_only: bool = False) -> Path:
    """
    Record ``episodes`` expert episodes (seeds from ``seed_start``); return ``out_dir``.

    ``noise`` and ``approach_jitter`` are the expert's (see ``sim.experts.Expert``).
    ``policy_factory(sim)`` replaces the scripted expert with another
    demonstrator (e.g. a trained teacher, for distillation). With
    ``successes_only`` the bag of a failed episode is deleted and its index
    entry marked ``discarded``, so datasets read only successful episodes.

    One bag per episode (``out_dir/<task>_seed<NNNN>``) and ``out_dir/index.json``.
    An existing folder is extended if it was collected with the same settings;
    an existing episode bag is refused. On Ctrl-C the current bag is closed
    cleanly and listed in the index as interrupted before the interrupt goes on.
    """
    if episodes <= 0:
        raise ValueError(f'episodes must be positive, got {episodes}')
    if noise < 0 or approach_jitter < 0:
        raise ValueError(f'noise and approach jitter must be >= 0, got {noise} and '
                         f'{approach_jitter}')
    config = sim_config(task, views, action_mode, width, height)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / INDEX_FILE
    index = load_index(index_path, {
        'format': INDEX_FORMAT, 'task': task, 'action_mode': action_mode,
        'control_hz': config.control_hz, 'views': list(views), 'width': width,
        'height': height, 'noise': noise, 'approach_jitter': approach_jitter,
        'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'command': ' '.join(sys.argv)})
    sim = TabletopSim(config)
    policy = policy_factory(sim) if policy_factory is not None else None
    custom = {'task': task, 'action_mode': action_mode, 'control_hz': str(config.control_hz)}
    try:
        for seed in tqdm(range(seed_start, seed_start + episodes), desc=f'collect {task}',
                         unit='episode'):
            name = episode_name(task, seed)
            recorder = BagRecorder(out_dir / name, custom | {'seed': str(seed)})
            try:
                with recorder:
                    entry = record_episode(sim, seed, noise, recorder, approach_jitter,
                                           policy)
            except KeyboardInterrupt:
                index['episodes'].append({'seed': seed, 'bag': recorder.path.name,
                                          'success': False, 'steps': sim.step_count,
                                          'interrupted': True})
                write_index(index_path, index)
                raise
            if successes_only and not entry['success']:
                shutil.rmtree(recorder.path)
                entry = entry | {'bag': None, 'discarded': True}
            index['episodes'].append(entry)
            write_index(index_path, index)
    finally:
        sim.close()
    return out_dir
