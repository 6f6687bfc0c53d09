"""
Validation curves of several training runs, grouped, compared and drawn in one figure.

A reward or method comparison is several runs per arm (training seeds), each
with its validation success against environment steps in ``metrics.jsonl``.
Runs are cut to the steps every run reached (the same budget for all), each
group's curve is the mean over its runs on the steps they share, and
:func:`steps_to_reach` answers the sample-efficiency question: how many
steps a group's mean needs to reach another group's final success, or a
:class:`Level` known from elsewhere (e.g. PPO's final success after the
steps its model card records, a run too long to repeat beside the others).
"""

from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

from matplotlib.figure import Figure
import numpy as np

from visual_rl_stack.core.run_layout import METRICS


@dataclass(frozen=True)
class Curve:
    """One run's validation success (fraction) at each validated env-step count."""

    run: str
    steps: np.ndarray
    success: np.ndarray


def load_curve(run_dir: Path) -> Curve:
    """Read a run's validation rows; ValueError when it has none."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise FileNotFoundError(f'{path} does not exist: is {run_dir} a training run folder?')
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    validated = [(row['env_steps'], row['val_success']) for row in rows if 'val_success' in row]
    if not validated:
        raise ValueError(f'{path} has no validation rows (val_success)')
    steps, success = zip(*sorted(dict(validated).items()))
    return Curve(str(run_dir), np.asarray(steps, dtype=np.int64), np.asarray(success, float))


@dataclass(frozen=True)
class GroupCurve:
    """A group's runs cut to the shared budget and their mean on the shared steps."""

    name: str
    runs: tuple[Curve, ...]
    steps: np.ndarray
    mean: np.ndarray

    @property
    def final(self) -> float:
        """Return the mean success at the last shared step."""
        return float(self.mean[-1])

    @property
    def start(self) -> float:
        """Return the mean success at the first shared step (the frozen base's)."""
        return float(self.mean[0])


@dataclass(frozen=True)
class Level:
    """A success level reached elsewhere: its label, the success and the env steps it took."""

    name: str
    success: float
    steps: Optional[int] = None

    def __post_init__(self):
        """Reject a success outside [0, 1] or steps below 1."""
        if not 0 <= self.success <= 1:
            raise ValueError(f'level {self.name!r}: success must be a fraction in [0, 1], '
                             f'got {self.success}')
        if self.steps is not None and self.steps < 1:
            raise ValueError(f'level {self.name!r}: steps must be >= 1, got {self.steps}')


def group_curves(groups: Mapping[str, Sequence[Curve]],
                 budget: Optional[int] = None) -> dict[str, GroupCurve]:
    """
    Cut every run to ``budget`` steps (default: the fewest any run reached) and average.

    A group's mean uses the steps all of its runs validated at; runs with the
    same schedule (envs, rollout steps, eval interval) share every step.
    """
    if not groups or any(not runs for runs in groups.values()):
        raise ValueError('every group needs at least one run')
    reached = min(int(curve.steps[-1]) for runs in groups.values() for curve in runs)
    budget = reached if budget is None else min(int(budget), reached)
    result = {}
    for name, runs in groups.items():
        cut = tuple(Curve(c.run, c.steps[c.steps <= budget], c.success[c.steps <= budget])
                    for c in runs)
        shared = sorted(set.intersection(*(set(c.steps.tolist()) for c in cut)))
        if not shared:
            raise ValueError(f'the runs of group {name!r} share no validated step; '
                             'give them the same envs, rollout steps and eval interval')
        steps = np.asarray(shared, dtype=np.int64)
        mean = np.mean([c.success[np.searchsorted(c.steps, steps)] for c in cut], axis=0)
        result[name] = GroupCurve(name, cut, steps, mean)
    return result


def steps_to_reach(group: GroupCurve, level: float) -> Optional[int]:
    """Return the first shared step where the group's mean success is >= ``level``, or None."""
    hits = np.flatnonzero(group.mean >= level - 1e-9)
    return int(group.steps[hits[0]]) if hits.size else None


def compare(groups: Mapping[str, GroupCurve], reference: str,
            levels: Sequence[Level] = ()) -> dict:
    """
    Return each group's start, final and steps to reach ``reference``'s final success.

    ``fraction_of_budget`` is those steps over the budget (the reference's last
    step): KAGI's claim is <= 0.5 for the dense reward against sparse. Per
    level, each group's steps to reach it and, where the level's own steps
    are known, their ratio (issue 36 asks <= 1/5 of PPO's).
    """
    if reference not in groups:
        raise ValueError(f'reference group {reference!r} is not one of {sorted(groups)}')
    target = groups[reference].final
    budget = int(groups[reference].steps[-1])
    rows = {}
    for name, group in groups.items():
        reach = steps_to_reach(group, target)
        rows[name] = {
            'runs': [curve.run for curve in group.runs],
            'start_success': group.start,
            'final_success': group.final,
            'final_success_per_run': [float(c.success[-1]) for c in group.runs],
            'best_success_per_run': [float(c.success.max()) for c in group.runs],
            'steps_to_reference_final': reach,
            'fraction_of_budget': None if reach is None else reach / budget,
            'curve': {'steps': group.steps.tolist(), 'mean_success': group.mean.tolist()},
        }
        if levels:
            rows[name]['levels'] = {level.name: _reach_level(group, level) for level in levels}
    report = {'reference': reference, 'reference_final_success': target,
              'budget_steps': budget, 'groups': rows}
    if levels:
        report['levels'] = [asdict(level) for level in levels]
    return report


def _reach_level(group: GroupCurve, level: Level) -> dict:
    """Return the steps ``group``'s mean needs to reach ``level`` and their share of its steps."""
    reach = steps_to_reach(group, level.success)
    ratio = None if reach is None or level.steps is None else reach / level.steps
    return {'steps_to_reach': reach, 'fraction_of_level_steps': ratio}


def plot_groups(groups: Mapping[str, GroupCurve], out_path: Path, title: str,
                levels: Sequence[Level] = ()) -> None:
    """Draw each group's runs (thin), mean (thick) and every level (dashed) in one PNG."""
    figure = Figure(figsize=(7, 4.5), dpi=110)
    axes = figure.subplots()
    colours = ['tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple', 'tab:brown']
    for (name, group), colour in zip(groups.items(), colours * len(groups)):
        for curve in group.runs:
            axes.plot(curve.steps, curve.success, color=colour, alpha=0.3, linewidth=1)
        axes.plot(group.steps, group.mean, color=colour, linewidth=2.5, marker='o',
                  markersize=3, label=f'{name} (mean of {len(group.runs)} runs)')
    for level, colour in zip(levels, ['dimgray', 'black', 'tab:gray', 'darkred'] * len(levels)):
        after = '' if level.steps is None else f' after {level.steps:,} steps'
        axes.axhline(level.success, color=colour, linestyle='--', linewidth=1.2,
                     label=f'{level.name}: {level.success:.0%}{after}')
    axes.set_xlabel('environment steps')
    axes.set_ylabel('validation success (deterministic)')
    axes.set_ylim(-0.02, 1.02)
    axes.grid(True, alpha=0.3)
    axes.legend(loc='upper left', fontsize=8)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f'.{out_path.name}.tmp')
    figure.savefig(tmp, format='png')
    tmp.replace(out_path)
