"""
Relabel recorded episodes with the KAGI reward: one query per bag, a reward per step.

A bag from ``vrl collect`` or the recorder holds every view's colour, aligned
depth, CameraInfo and pose at every step, the end-effector pose and the sparse
reward, so the views of the first step are prompted exactly as the node would
at the episode's start. The ``N + 1`` end-effector poses (reset, then after
every step) and the ``N`` sparse rewards of the steps go through
:func:`.dense_reward.relabel`. Each bag gets a sidecar ``<bag>.reward.json``
(per step: stamp, sparse, dense, combined, progress; the waypoints and the
query's diagnostic) and a plot ``<bag>.reward.png`` of the rewards over time.
"""

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
import numpy as np
from visual_rl_stack.data.bags import BagError
from visual_rl_stack.data.dataset import episode_bags, read_streams, Stream
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.msg_conversions import pose_to_arrays, pose_to_matrix
from visual_rl_stack.sim.cameras import CameraFrame

from .dense_reward import relabel
from .episode_affordance import EpisodeAffordance, Plan, WARN
from .frames import frame_from_messages

#: The streams of one view the query needs.
VIEW_STREAMS = {'color': topics.color_topic, 'depth': topics.depth_topic,
                'camera_info': topics.camera_info_topic, 'pose': topics.camera_pose_topic}


def first_frames(streams: dict[str, Stream], views: tuple[str, ...],
                 stamp: int) -> dict[str, CameraFrame]:
    """
    Return each view's frame at the episode's first step (``stamp``, ns).

    Views lacking a stream are left out, so that the query reports them missing.
    """
    frames = {}
    for view in views:
        found = {}
        for stream, topic in VIEW_STREAMS.items():
            s = streams.get(topic(view))
            at = [] if s is None else np.flatnonzero(s.times >= stamp)
            if len(at):
                found[stream] = s.values[int(at[0])]
        if len(found) == len(VIEW_STREAMS):
            frames[view] = frame_from_messages(view, found['color'], found['depth'],
                                               found['camera_info'],
                                               pose_to_matrix(found['pose'].pose))
    return frames


def relabel_bag(bag: Path, episode: EpisodeAffordance) -> dict[str, Any]:
    """Return the relabelled rewards of one episode bag as a JSON-ready dict."""
    wanted = [topics.EE_POSE, topics.TASK_REWARD, topics.TASK_INSTRUCTION]
    wanted += [topic(view) for view in episode.views for topic in VIEW_STREAMS.values()]
    streams = read_streams(bag, wanted)
    if topics.EE_POSE not in streams or len(streams[topics.EE_POSE].times) < 2:
        raise BagError(f'bag {bag} has fewer than 2 {topics.EE_POSE} messages')
    ee = streams[topics.EE_POSE]
    positions = np.array([pose_to_arrays(m.pose)[0] for m in ee.values])
    rewards = streams.get(topics.TASK_REWARD, Stream(np.zeros(0, np.int64), []))
    by_time = {int(t): float(m.data) for t, m in zip(rewards.times, rewards.values)}
    sparse = np.array([by_time.get(int(t), 0.0) for t in ee.times[1:]])
    instruction = streams.get(topics.TASK_INSTRUCTION)
    text = instruction.values[0].data if instruction else ''
    try:
        frames = first_frames(streams, episode.views, int(ee.times[0]))
    except ValueError as error:  # a frame the checks refuse (FrameRejected)
        plan = Plan(text, None, f'sparse only: {error}', WARN)
    else:
        plan = episode.make_plan(frames, text, bag.name)
    result = relabel(plan.waypoints, positions, sparse, settings=episode.reward,
                     missing=plan.diagnostic)
    return {'bag': bag.name, 'instruction': text, 'backend': episode.backend_name,
            'diagnostic': plan.diagnostic, 'level': plan.level,
            'waypoints': None if not plan.ok else np.round(plan.waypoints, 5).tolist(),
            'details': dict(plan.details),
            'steps': {'stamp': (ee.times[1:] * 1e-9).round(4).tolist(),
                      'sparse': sparse.tolist(), 'dense': result.dense.round(6).tolist(),
                      'combined': result.rewards.round(6).tolist(),
                      'progress': result.progress.tolist()}}


def plot_rewards(record: dict[str, Any], path: Path) -> None:
    """Plot the sparse, dense and combined reward of one episode over time."""
    steps = record['steps']
    figure = Figure(figsize=(7, 3.2))
    axes = figure.subplots()
    for key, style in (('sparse', ':'), ('dense', '--'), ('combined', '-')):
        axes.plot(steps['stamp'], steps[key], style, label=key)
    axes.set_xlabel('time (s)')
    axes.set_ylabel('reward')
    axes.set_title(f'{record["bag"]}: {record["diagnostic"]}', fontsize=8)
    axes.legend(loc='upper left', fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def relabel_folder(bags: Path, out: Path, episode: EpisodeAffordance) -> list[dict[str, Any]]:
    """Relabel every episode bag of ``bags`` into ``out``; return one summary row per bag."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for bag in episode_bags(Path(bags)):
        record = relabel_bag(bag, episode)
        (out / f'{bag.name}.reward.json').write_text(json.dumps(record, indent=1) + '\n')
        plot_rewards(record, out / f'{bag.name}.reward.png')
        combined = record['steps']['combined']
        rows.append({'bag': bag.name, 'steps': len(combined), 'level': record['level'],
                     'return': float(np.sum(combined)), 'diagnostic': record['diagnostic']})
    return rows
