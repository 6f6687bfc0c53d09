"""``vrl models``: list the shipped trained models, or ship a run."""

import argparse
import json
from pathlib import Path

from visual_rl_stack.core.run_layout import RUN_CONFIG
from visual_rl_stack.core.shipped_models import (add_model, AFFORDANCE_KIND, folder_bytes,
                                                 models_dir, shipped_models)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the ``vrl models`` arguments (list, or ``add`` a run)."""
    parser.add_argument('action', nargs='?', choices=('list', 'add'), default='list',
                        help='list the shipped models (default) or add a run to them')
    parser.add_argument('run', nargs='?', type=Path, help='add: the BC run folder to ship')
    parser.add_argument('name', nargs='?', help='add: the name to ship it under')
    parser.add_argument('--eval', type=Path, dest='eval_json', nargs='+',
                        help='add: `vrl eval --json` result to put on the model card (for a '
                             'keypoint affordance run: one `vrl affordance --json` per task)')
    parser.add_argument('--description', default='', help='add: one line for the model card')
    parser.add_argument('--float32', action='store_true',
                        help='add: keep the weights in float32 as trained (twice the size of '
                        'the default float16 copy), for a policy float16 rounding hurts')
    parser.add_argument('--dir', type=Path, dest='folder', default=None,
                        help='add: the models folder to write into, e.g. models/ of a '
                             'checkout (default: the source tree models/ when running from one, '
                             'else the installed share/ copy, which the next build replaces)')
    parser.add_argument('--json', action='store_true', help='list: print JSON')


def main(args: argparse.Namespace) -> int:
    """List the shipped models or ship a run."""
    if args.action == 'add':
        if args.run is None or not args.name:
            raise ValueError('usage: vrl models add RUN NAME [--eval EVAL.json]')
        evaluations = [json.loads(path.read_text()) for path in args.eval_json or ()]
        if _is_affordance_run(args.run):
            from visual_rl_stack.vlm_affordance.keypoint_model.ship import ship_affordance_model
            path = ship_affordance_model(args.run, args.name, evaluations,
                                         args.folder or models_dir(), args.description)
            print(f'shipped {args.name} ({folder_bytes(path) / 2 ** 20:.1f} MB) in {path}')
            return 0
        if len(evaluations) > 1:
            raise ValueError('a policy takes one --eval result')
        evaluation = evaluations[0] if evaluations else None
        model = add_model(args.run, args.name, evaluation, description=args.description,
                          weights_dtype='float32' if args.float32 else 'float16',
                          folder=args.folder)
        print(f'shipped {model.name} ({model.size_bytes / 2 ** 20:.1f} MB) in {model.path}')
        return 0
    rows = [m.summary() for m in shipped_models().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f'no shipped models in {models_dir()}')
        return 0
    print(f'{"name":<24} {"task":<11} {"obs":<12} {"success":>12} {"size":>8}')
    for row in rows:
        rate = ('-' if row['success_rate'] is None else
                f'{row["success_rate"]:.0%} of {row["episodes"]}')
        if row['within_2cm'] is not None:
            rate = f'{row["within_2cm"]:.0%} <2cm'
        print(f'{row["name"]:<24} {row["task"] or "-":<11} {row["obs"] or "-":<12} '
              f'{rate:>12} {row["size_mb"]:>6.1f}MB')
    return 0


def _is_affordance_run(run: Path) -> bool:
    """Return whether ``run`` is a keypoint affordance run (``vrl train-affordance``)."""
    config = Path(run) / RUN_CONFIG
    return config.is_file() and json.loads(config.read_text()).get('kind') == AFFORDANCE_KIND
