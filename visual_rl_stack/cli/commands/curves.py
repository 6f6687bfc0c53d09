r"""
``vrl curves``: the validation curves of groups of runs in one PNG, and who got there first.

Example (three training seeds per reward)::

    vrl curves --group sparse runs/rl/sparse_s0 runs/rl/sparse_s1 runs/rl/sparse_s2 \\
        --group kagi runs/rl/kagi_s0 runs/rl/kagi_s1 runs/rl/kagi_s2 \\
        --reference sparse --out runs/rl/kagi_vs_sparse.png --json runs/rl/kagi_vs_sparse.json

Every run is cut to the steps all of them reached (or ``--budget``); the
JSON gives each group's start and final mean success and the steps its mean
needed to reach the reference group's final success. ``--level NAME SUCCESS
[STEPS]`` adds a level reached elsewhere (a dashed line; e.g. PPO's final
success and the steps its model card records) and each group's steps to it.
"""

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the module draws with matplotlib: imported when the command runs
    from visual_rl_stack.evaluation.learning_curves import Level


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl curves`` arguments to ``parser``."""
    parser.add_argument('--group', nargs='+', action='append', required=True,
                        metavar=('NAME', 'RUN'),
                        help='a group name and its run folders (repeat per group)')
    parser.add_argument('--reference', help='group whose final success the others must reach '
                        '(default: the first)')
    parser.add_argument('--budget', type=int, help='cut every run at this many env steps '
                        '(default: the fewest any run reached)')
    parser.add_argument('--level', nargs='+', action='append', default=[],
                        metavar=('NAME', 'SUCCESS'),
                        help='a success level reached elsewhere: its name, the success as a '
                        'fraction and optionally the env steps it took (repeatable)')
    parser.add_argument('--out', required=True, type=Path, help='PNG to write')
    parser.add_argument('--json', type=Path, help='JSON file for the comparison')
    parser.add_argument('--title', default='validation success against environment steps',
                        help='figure title')


def main(args: argparse.Namespace) -> int:
    """Load, group, compare, draw and print one line per group."""
    from visual_rl_stack.evaluation.learning_curves import (compare, group_curves, load_curve,
                                                            plot_groups)
    if any(len(group) < 2 for group in args.group):
        raise ValueError('each --group needs a name and at least one run folder')
    names = [group[0] for group in args.group]
    if len(set(names)) != len(names):
        raise ValueError(f'group names must differ, got {names}')
    groups = group_curves({group[0]: [load_curve(Path(run)) for run in group[1:]]
                           for group in args.group}, args.budget)
    levels = [_level(values) for values in args.level]
    report = compare(groups, args.reference or names[0], levels)
    plot_groups(groups, args.out, args.title, levels)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + '\n')
    print(f'budget {report["budget_steps"]} env steps; reference {report["reference"]} ends at '
          f'{report["reference_final_success"]:.0%}')
    for name, row in report['groups'].items():
        reach = row['steps_to_reference_final']
        reached = ('never' if reach is None
                   else f'at {reach} steps ({row["fraction_of_budget"]:.0%} of the budget)')
        print(f'{name}: {row["start_success"]:.0%} -> {row["final_success"]:.0%} '
              f'over {len(row["runs"])} runs; reaches the reference final {reached}')
        for level, reach in row.get('levels', {}).items():
            share = reach['fraction_of_level_steps']
            print(f'  {level}: ' + ('never reached' if reach['steps_to_reach'] is None else
                                    f'reached at {reach["steps_to_reach"]} steps'
                                    + ('' if share is None else f' ({share:.2f} of its steps)')))
    print(f'wrote {args.out}')
    return 0


def _level(values: list[str]) -> 'Level':
    """Parse one ``--level NAME SUCCESS [STEPS]``."""
    from visual_rl_stack.evaluation.learning_curves import Level
    if len(values) not in (2, 3):
        raise ValueError(f'--level takes NAME SUCCESS [STEPS], got {values}')
    try:
        success = float(values[1])
        steps = int(values[2]) if len(values) == 3 else None
    except ValueError:
        raise ValueError(f'--level {" ".join(values)}: SUCCESS must be a number and STEPS an '
                         'integer') from None
    return Level(values[0], success, steps)
