"""
``vrl demo`` (``make demo``): the main job on the embedded defaults.

Brings the simulator graph up in lockstep (sim node + camera node), drives
the scripted expert through ROS topics on a few episodes of two tasks,
records every episode as a rosbag2 MCAP bag, then runs shipped policies (BC,
and a BC + residual run beside its own frozen base on the same seeds) closed loop through the
graph with the policy node (``vrl eval --via-ros``) and writes a report with
success, step rates and one tiled camera frame.
"""

from dataclasses import asdict
import datetime
import os
from pathlib import Path
import time
from typing import Any, Optional, Sequence

import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter
from visual_rl_stack.core.image_buffers import image_to_array
from visual_rl_stack.core.policy import kind_label, policy_kind, PolicyOptions, resolve_run
from visual_rl_stack.core.records import machine_description, write_json
from visual_rl_stack.core.run_layout import CHECKPOINT, RESIDUAL_KINDS
from visual_rl_stack.core.shipped_models import resolve_policy
from visual_rl_stack.data.bags import read_messages
from visual_rl_stack.data.recorder import sim_graph_topics
from visual_rl_stack.data.recorder_node import BagRecorderNode
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import GraphRunner
from visual_rl_stack.ros.lockstep_client import LockstepClient

from .ros_eval import evaluate_via_ros
from .ros_expert import run_ros_episode

DEFAULT_TASKS = ('lift', 'push')
#: Shipped models the demo runs through the policy node (each on its own task): BC on lift,
#: then the peg_insert residual, which brings its frozen BC base alongside.
DEFAULT_POLICIES = ('bc_state_lift', 'resip_peg_insert')


def _wait_until_recording(recorder: BagRecorderNode, wanted: set,
                          timeout: float = 10.0) -> None:
    """Wait (the graph thread spins) until the recorder has every published wanted topic."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        published = {name for name, _ in recorder.get_topic_names_and_types()}
        if (wanted & published) <= recorder.recorded_topics:
            return
        time.sleep(0.05)
    missing = sorted(wanted - recorder.recorded_topics)
    raise TimeoutError(f'recorder did not subscribe to {missing}')


def _wait_until_stored(recorder: BagRecorderNode, quiet_s: float = 0.5,
                       timeout: float = 10.0) -> None:
    """
    Wait until the recorder has stored nothing new for ``quiet_s`` (the graph thread spins).

    In lockstep nothing is published once the episode has ended, so a quiet
    recorder holds the final step: on a loaded machine its last messages
    (the success among them) were still queued when the bag was closed.
    """
    deadline = time.monotonic() + timeout
    count, since = recorder.recorder.message_count, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        if recorder.recorder.message_count != count:
            count, since = recorder.recorder.message_count, time.monotonic()


def _record_episode(runner: GraphRunner, client: LockstepClient, task: str, seed: int,
                    bag: Path) -> dict[str, Any]:
    """Run one expert episode through ROS while a recorder node writes ``bag``."""
    wanted = set(sim_graph_topics()) | {topics.MULTIVIEW_IMAGE}
    recorder = BagRecorderNode(context=runner.context, parameter_overrides=[
        Parameter('output', value=str(bag)), Parameter('topics', value=sorted(wanted)),
        Parameter('use_sim_time', value=True)])
    runner.executor.add_node(recorder)
    try:
        _wait_until_recording(recorder, wanted)
        result, last = run_ros_episode(client, task, seed)
        _wait_until_stored(recorder)
    finally:
        runner.executor.remove_node(recorder)
        recorder.destroy_node()
    return {'task': task, **asdict(result), 'bag_messages': sum(1 for _ in read_messages(bag)),
            'last_observation': last}


def _save_frame(observation: Any, path: Path) -> None:
    """Save the tiled multi-view image of an observation as PNG."""
    from PIL import Image
    Image.fromarray(image_to_array(observation.multiview)).save(path)


def run_demo(out: Path, tasks: list[str], episodes: int, seed_start: int,
             policies: Sequence[str] = (), policy_episodes: int = 3) -> dict[str, Any]:
    """Run the demo and return the report (also written to ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    bags = out / 'bags'
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ.get('ROS_DOMAIN_ID', '42')))
    overrides = {'sim_node': {'mode': 'lockstep', 'task': tasks[0]}}
    rows = []
    try:
        with GraphRunner('sim', overrides, context) as runner:
            client = LockstepClient(context=context, want_multiview=True)
            try:
                for task in tasks:
                    for seed in range(seed_start, seed_start + episodes):
                        bag = bags / f'{stamp}_{task}_seed{seed:04d}'
                        row = _record_episode(runner, client, task, seed, bag)
                        print(f'demo: {task} seed {seed}: success={row["success"]} '
                              f'steps={row["steps"]} ({row["steps"] / row["wall_s"]:.1f} '
                              f'steps/s through ROS), bag {bag}')
                        if not rows:
                            _save_frame(row['last_observation'], out / 'multiview.png')
                        del row['last_observation']
                        row['bag'] = str(bag)
                        rows.append(row)
            finally:
                client.destroy_node()
    finally:
        context.try_shutdown()
    report = _summarise(rows, tasks)
    report['policies'] = [row for name in policies
                          for row in _policy_rows(name, policy_episodes, seed_start)]
    write_json(report, out / 'report.json')
    (out / 'report.md').write_text(_markdown(report))
    return report


def _policy_rows(policy: str, episodes: int, seed_start: int) -> list[dict[str, Any]]:
    """
    Return the report rows of one policy: a residual run's own frozen base first.

    The base is the copy the residual was trained on (``RUN2/checkpoint``), not
    whatever BC model now ships under the base's name, run as the residual runs
    it (DDIM steps, noise scale, actions per chunk), so the two rows compare.
    """
    path = resolve_policy(policy)
    rows = []
    if policy_kind(path) in RESIDUAL_KINDS:
        trained = resolve_run(path)[1] or {}
        base = PolicyOptions(num_inference_steps=trained.get('base_inference_steps'),
                             noise_scale=trained.get('base_noise_scale'),
                             action_steps=trained.get('base_action_steps'))
        rows.append(_policy_row(str(path / CHECKPOINT), episodes, seed_start,
                                label=f'{policy} (its frozen base)', options=base))
    return rows + [_policy_row(policy, episodes, seed_start)]


def _policy_row(policy: str, episodes: int, seed_start: int, label: Optional[str] = None,
                options: Optional[PolicyOptions] = None) -> dict[str, Any]:
    """Run one BC or residual policy through the policy node on its task; summarise it."""
    _checkpoint, run_config = resolve_run(policy)
    task = (run_config or {}).get('task')
    if task is None:
        raise ValueError(f'policy {policy!r} has no run config naming its task')
    result = evaluate_via_ros(task, policy, episodes, seed_start, progress=False,
                              options=options)
    kind = kind_label(policy_kind(policy))
    noise = result.get('noise_scale') or 0.0
    if noise > 0:  # its chunks are sampled: another run on the same seeds may differ
        kind += f', sampled (noise scale {noise:g})'
    print(f'demo: {kind} policy {label or policy} on {task} through the policy node: '
          f'{result["successes"]}/{episodes} successes')
    keys = ('task', 'episodes', 'seed_start', 'successes', 'success_rate',
            'mean_episode_length', 'inference_latency_ms')
    return {'kind': kind, 'policy': label or policy, **{k: result[k] for k in keys}}


def _summarise(rows: list[dict], tasks: list[str]) -> dict[str, Any]:
    """Aggregate episode rows per task."""
    per_task = {}
    for task in tasks:
        mine = [r for r in rows if r['task'] == task]
        steps = sum(r['steps'] for r in mine)
        per_task[task] = {
            'episodes': len(mine), 'successes': sum(r['success'] for r in mine),
            'success_rate': sum(r['success'] for r in mine) / max(len(mine), 1),
            'ros_steps_per_s': steps / max(sum(r['wall_s'] for r in mine), 1e-9),
        }
    return {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'machine': machine_description(), 'tasks': per_task, 'episodes': rows}


def _markdown(report: dict[str, Any]) -> str:
    """Render the report as a short Markdown page."""
    lines = ['# visual_rl_stack demo', '',
             f'{report["date"]}, {report["machine"]["cpu_cores"]} cores, '
             f'GPU: {report["machine"]["gpu"] or "none"}.', '',
             'Scripted expert driven through the ROS graph (sim_node + camera_node, lockstep).',
             '', '| task | episodes | success rate | steps/s through ROS |', '|---|---|---|---|']
    for task, row in report['tasks'].items():
        lines.append(f'| {task} | {row["episodes"]} | {row["success_rate"]:.0%} | '
                     f'{row["ros_steps_per_s"]:.1f} |')
    if report.get('policies'):
        lines += ['', 'Shipped policies, closed loop through the graph with the policy node '
                  '(sim_node -> camera_node -> policy_node -> sim_node, lockstep); a residual '
                  'runs on the same seeds as its BC base:', '',
                  '| policy | kind | task | seeds | success rate | mean steps | '
                  'inference per chunk (median) |', '|---|---|---|---|---|---|---|']
        for row in report['policies']:
            seeds = f'{row["seed_start"]}-{row["seed_start"] + row["episodes"] - 1}'
            latency = row['inference_latency_ms']['median']
            lines.append(f'| {row["policy"]} | {row["kind"]} | {row["task"]} | {seeds} | '
                         f'{row["successes"]}/{row["episodes"]} | '
                         f'{row["mean_episode_length"]:.1f} | {latency:.0f} ms |')
    lines += ['', '| task | seed | success | steps | bag | messages |',
              '|---|---|---|---|---|---|']
    for row in report['episodes']:
        lines.append(f'| {row["task"]} | {row["seed"]} | {row["success"]} | {row["steps"]} | '
                     f'`{row["bag"]}` | {row["bag_messages"]} |')
    lines += ['', 'The cameras at the end of the first episode, as the policy sees them '
              '(`/perception/multiview/image`):', '', '![multiview](multiview.png)', '']
    return '\n'.join(lines)
