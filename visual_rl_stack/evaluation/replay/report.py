"""
Write a replay evaluation's report: summary.json, report.md, index.html and PNGs per episode.

The JSON holds every number; the Markdown and HTML show the same numbers
(rounded) in one summary table and one table per episode row, with links to
the episode's plots: action error over time, reward and stage timelines, and
the tiled camera frame at each key frame.
"""

import html
import json
from pathlib import Path
from typing import Any, Optional

from matplotlib.figure import Figure
import numpy as np

from .scoring import EpisodeSeries
from .session import EpisodeTrace

#: Most key frames shown in one strip.
MAX_KEYFRAMES = 8
SUMMARY_FILE = 'summary.json'


def episode_plots(folder: Path, result: dict, series: EpisodeSeries, trace: EpisodeTrace,
                  stamps: np.ndarray, recorded_reward: np.ndarray, success: np.ndarray,
                  gripper: np.ndarray) -> dict[str, str]:
    """Draw the episode's PNGs into ``folder``; return plot name -> file name."""
    folder.mkdir(parents=True, exist_ok=True)
    seconds = (stamps - stamps[0]) * 1e-9
    plots = {}
    if series.errors:
        plots['action error'] = _action_error_plot(folder / 'action_error.png', seconds, series)
    if series.dense is not None or series.progress is not None:
        plots['timelines'] = _timeline_plot(folder / 'timelines.png', seconds, series,
                                            recorded_reward, success)
    frames = keyframe_rows(trace.keyframes, gripper, len(stamps))
    images = [(seconds[r], trace.multiview.get(int(stamps[r]))) for r in frames]
    images = [(t, image) for t, image in images if image is not None]
    if images:
        plots['key frames'] = _keyframe_strip(folder / 'keyframes.png', images,
                                              'world-model key frames' if trace.keyframes
                                              else 'first, gripper changes, last')
    return {name: f'{folder.name}/{path}' for name, path in plots.items()}


def keyframe_rows(keyframes: list[int], gripper: np.ndarray, steps: int) -> list[int]:
    """
    Return the steps to show: the world model's key frames, else gripper-command changes.

    The first and last steps are always shown; at most :data:`MAX_KEYFRAMES`,
    evenly thinned.
    """
    if keyframes:
        rows = list(keyframes)
    else:
        closed = np.nan_to_num(gripper, nan=1.0) < 0.5
        rows = list(np.flatnonzero(np.diff(closed.astype(int)) != 0) + 1)
    rows = sorted({0, steps - 1, *[int(r) for r in rows if 0 <= r < steps]})
    if len(rows) > MAX_KEYFRAMES:
        rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, MAX_KEYFRAMES)]
    return rows


def _action_error_plot(path: Path, seconds: np.ndarray, series: EpisodeSeries) -> str:
    figure = Figure(figsize=(8, 6))
    axes = figure.subplots(3, 1, sharex=True)
    scales = {'translation': (1000.0, 'translation (mm)'),
              'rotation': (np.degrees(1.0), 'rotation (deg)'),
              'gripper': (1.0, 'gripper (fraction)')}
    for axis, (name, (scale, label)) in zip(axes, scales.items()):
        axis.plot(seconds, series.errors[name] * scale, label='vs executed command')
        if series.expert_errors:
            axis.plot(seconds, series.expert_errors[name] * scale, '--', label='vs expert label')
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(loc='upper right', fontsize=8)
    axes[0].set_title('policy action error against the recorded commands')
    axes[-1].set_xlabel('episode time (s)')
    return _save(figure, path)


def _timeline_plot(path: Path, seconds: np.ndarray, series: EpisodeSeries,
                   recorded_reward: np.ndarray, success: np.ndarray) -> str:
    rows = 2 if series.stage_index is not None else 1
    figure = Figure(figsize=(8, 2.8 * rows))
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)
    axis = axes[0, 0]
    axis.plot(seconds, recorded_reward, color='black', lw=1, label='recorded /task/reward')
    for values, label in ((series.dense, 'affordance /reward/dense'),
                          (series.progress, 'world model progress'),
                          (series.wm_reward, 'world model predicted reward')):
        if values is not None and np.isfinite(values).any():
            axis.plot(seconds, values, label=label)
    if success.any():
        period = float(np.median(np.diff(seconds))) if len(seconds) > 1 else 0.1
        axis.axvspan(seconds[int(np.argmax(success))], seconds[-1] + period, color='green',
                     alpha=0.15, label='recorded success')
    axis.set_ylabel('reward')
    axis.legend(loc='upper left', fontsize=8)
    axis.grid(alpha=0.3)
    if series.stage_index is not None:
        stage = axes[1, 0]
        stage.step(seconds, series.stage_index, where='post')
        stage.set_ylabel('world-model stage')
        stage.grid(alpha=0.3)
    axes[-1, 0].set_xlabel('episode time (s)')
    return _save(figure, path)


def _keyframe_strip(path: Path, images: list[tuple[float, np.ndarray]], title: str) -> str:
    figure = Figure(figsize=(6, 2.0 * len(images)))
    axes = figure.subplots(len(images), 1, squeeze=False)
    for axis, (t, image) in zip(axes[:, 0], images):
        axis.imshow(image[..., :3])
        axis.set_title(f't = {t:.1f} s', fontsize=8)
        axis.axis('off')
    figure.suptitle(f'tiled camera frame at each key frame ({title})', fontsize=9)
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    return path.name


def _fmt(value: Any, scale: float = 1.0, digits: int = 1) -> str:
    """Format a number (or None) for a table."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return f'{value * scale:.{digits}f}'


def _get(result: dict, *keys: str) -> Optional[Any]:
    for key in keys:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


#: Episode table columns: header, path into an episode result, scale, digits.
COLUMNS = (
    ('steps', ('steps',), 1.0, 0), ('duration (s)', ('duration_s',), 1.0, 1),
    ('wall (s)', ('wall_s',), 1.0, 1), ('speed (x real time)', ('speed',), 1.0, 1),
    ('success', ('success',), 1.0, 0),
    ('translation mean / p95 (mm)', (('policy', 'translation', 'mean'),
                                     ('policy', 'translation', 'p95')), 1000.0, 1),
    ('rotation mean / p95 (deg)', (('policy', 'rotation', 'mean'),
                                   ('policy', 'rotation', 'p95')), float(np.degrees(1.0)), 1),
    ('gripper mean', ('policy', 'gripper', 'mean'), 1.0, 3),
    ('interventions (%)', ('policy', 'intervention_fraction'), 100.0, 0),
    ('chunk latency median (ms)', ('policy', 'chunk_latency_ms', 'median'), 1.0, 1),
    ('dense score', ('affordance', 'score'), 1.0, 3),
    ('keypoint moves median (cm)', ('affordance', 'keypoint_displacement_cm', 'median'), 1.0, 2),
    ('final stage', ('world_model', 'final_stage'), 1.0, 0),
    ('stages agree with success', ('world_model', 'agrees_with_success'), 1.0, 0),
)


def _cell(result: dict, path: tuple, scale: float, digits: int) -> str:
    if path and isinstance(path[0], tuple):
        return ' / '.join(_cell(result, p, scale, digits) for p in path)
    value = _get(result, *path)
    if isinstance(value, str):
        return value
    return _fmt(value, scale, digits)


def write_report(out: Path, summary: dict, results: list[dict], plots: dict[str, dict],
                 header: dict) -> dict[str, Path]:
    """Write summary.json, report.md and index.html into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    document = {**header, 'summary': summary, 'episodes': results}
    paths = {'json': out / SUMMARY_FILE, 'markdown': out / 'report.md',
             'html': out / 'index.html'}
    paths['json'].write_text(json.dumps(document, indent=2, default=_jsonable) + '\n',
                             encoding='utf-8')
    shown = [(name, path, scale, digits) for name, path, scale, digits in COLUMNS
             if any(_cell(r, path, scale, digits) != '-' for r in results)]
    rows = [[r['episode']] + ([f'error: {r["error"]}'] + [''] * (len(shown) - 1)
                              if r.get('error') else [_cell(r, p, s, d) for _, p, s, d in shown])
            for r in results]
    headers = ['episode'] + [name for name, *_ in shown]
    lines = [f'# Replay evaluation: {header.get("bags", "")}', '',
             *[f'- {k}: `{v}`' for k, v in header.items() if k != 'command'],
             f'- command: `{header.get("command", "")}`', '', '## Summary', '',
             *summary_lines(summary), '', '## Episodes', '',
             '| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    for r in results:
        notes = episode_notes(r)
        if notes or plots.get(r['episode']):
            lines += ['', f'### {r["episode"]}', '']
            lines += [f'- {note}' for note in notes]
            lines += [f'![{name}]({path})' for name, path in plots.get(r['episode'], {}).items()]
    paths['markdown'].write_text('\n'.join(lines) + '\n', encoding='utf-8')
    paths['html'].write_text(_html(header, summary, headers, rows, results, plots),
                             encoding='utf-8')
    return paths


def episode_notes(result: dict) -> list[str]:
    """Return what went wrong or was left out on one episode, one line each."""
    return ([f'error: {result["error"]}'] if result.get('error') else []) + [
        f'{k} left out: {v}' for k, v in result.get('skipped', {}).items()] + result.get(
        'notes', [])


def summary_lines(summary: dict) -> list[str]:
    """Return the pooled numbers as Markdown bullet lines."""
    lines = [f'- episodes replayed: {summary["replayed"]} / {summary["episodes"]}'
             + (f' (failed: {", ".join(summary["failed"])})' if summary['failed'] else ''),
             f'- replay speed: median {_fmt(_get(summary, "speed", "median"))}x real time, '
             f'slowest {_fmt(_get(summary, "speed", "min"))}x']
    policy = summary.get('policy')
    if policy:
        degrees = float(np.degrees(1.0))
        lines.append(
            f'- policy action error per step (mean / p95): translation '
            f'{_fmt(policy["translation"]["mean"], 1000)} / '
            f'{_fmt(policy["translation"]["p95"], 1000)} mm, rotation '
            f'{_fmt(policy["rotation"]["mean"], degrees)} / '
            f'{_fmt(policy["rotation"]["p95"], degrees)} deg, gripper '
            f'{_fmt(policy["gripper"]["mean"], 1, 3)} / {_fmt(policy["gripper"]["p95"], 1, 3)}')
        lines.append(f'- safety filter would have intervened on '
                     f'{_fmt(policy["intervention_fraction"], 100)} % of the steps; chunk '
                     f'latency median {_fmt(policy["chunk_latency_ms"]["median_of_episodes"])} ms'
                     f' (worst p99 {_fmt(policy["chunk_latency_ms"]["worst_p99"])} ms)')
        if 'vs_expert' in policy:
            expert = policy['vs_expert']
            lines.append(f'- against the expert labels: translation '
                         f'{_fmt(expert["translation"]["mean"], 1000)} mm, rotation '
                         f'{_fmt(expert["rotation"]["mean"], np.degrees(1.0))} deg (mean)')
    affordance = summary.get('affordance')
    if affordance:
        lines.append(f'- affordance: AUC success vs failure '
                     f'{_fmt(affordance["auc_success_vs_failure"], 1, 3)} '
                     f'({affordance["successes"]} successes, {affordance["failures"]} failures); '
                     'keypoints move '
                     f'{_fmt(affordance["keypoint_displacement_cm"]["median"], 1, 2)} cm '
                     '(median) between answers')
    world = summary.get('world_model')
    if world:
        lines.append(f'- world model: stage timeline agrees with /task/success on '
                     f'{_fmt(world["agreement_with_success"], 100)} % of the episodes; plan done '
                     f'{_fmt(_get(world, "done_lag_s", "median"), 1, 2)} s after success '
                     '(median)')
        if world.get('reward_vs_progress'):
            lines.append(f'- predicted reward vs stage progress: MAE '
                         f'{_fmt(world["reward_vs_progress"]["mae"], 1, 3)}, r '
                         f'{_fmt(world["reward_vs_progress"]["r"], 1, 2)}')
    return lines


def _html(header: dict, summary: dict, headers: list[str], rows: list[list[str]],
          results: list[dict], plots: dict[str, dict]) -> str:
    esc = html.escape
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>Replay evaluation</title>',
             '<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
             'td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}'
             'img{max-width:640px;margin:4px}</style></head><body>',
             '<h1>Replay evaluation</h1><ul>'
             + ''.join(f'<li>{esc(str(k))}: <code>{esc(str(v))}</code></li>'
                       for k, v in header.items()) + '</ul>',
             '<h2>Summary</h2><ul>'
             + ''.join(f'<li>{esc(line[2:])}</li>' for line in summary_lines(summary)) + '</ul>',
             '<h2>Episodes</h2><table><tr>' + ''.join(f'<th>{esc(h)}</th>' for h in headers)
             + '</tr>']
    for row in rows:
        name = esc(row[0])
        cells = [f'<td><a href="#{name}">{name}</a></td>'] + [f'<td>{esc(c)}</td>'
                                                              for c in row[1:]]
        parts.append('<tr>' + ''.join(cells) + '</tr>')
    parts.append('</table>')
    for r in results:
        notes = episode_notes(r)
        parts.append(f'<h3 id="{esc(r["episode"])}">{esc(r["episode"])}</h3>')
        parts.append('<ul>' + ''.join(f'<li>{esc(n)}</li>' for n in notes) + '</ul>')
        parts += [f'<img src="{esc(path)}" alt="{esc(name)}">'
                  for name, path in plots.get(r['episode'], {}).items()]
    parts.append('</body></html>')
    return '\n'.join(parts) + '\n'


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars and arrays into JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f'cannot write {type(value).__name__} to JSON')
