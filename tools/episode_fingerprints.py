r"""
Record, and compare, every shipped model's episodes: a check that a change kept behaviour.

A restructuring must not change what any policy does. ``record`` evaluates
each shipped model on its card's task and the scripted expert on every task,
on the same seeds, and writes one ``vrl eval`` JSON per row into a folder;
``compare`` then matches two folders episode by episode (seed, success,
steps, return) and exits non-zero on any difference::

    python tools/episode_fingerprints.py record runs/fingerprints/before --episodes 20
    python tools/episode_fingerprints.py record runs/fingerprints/after --episodes 20
    python tools/episode_fingerprints.py compare runs/fingerprints/before runs/fingerprints/after
"""

import argparse
import json
from pathlib import Path
import sys

from visual_rl_stack.core.policy import PolicyOptions
from visual_rl_stack.core.records import write_json
from visual_rl_stack.core.shipped_models import shipped_models
from visual_rl_stack.evaluation.episodes import evaluate
from visual_rl_stack.sim.config import TASK_NAMES


def record(out: Path, episodes: int, seed_start: int) -> None:
    """Evaluate every shipped model and the expert on every task; one JSON per row."""
    rows = {name: (model.card['task'], name) for name, model in shipped_models().items()}
    rows.update({f'expert_{task}': (task, 'expert') for task in TASK_NAMES})
    for row, (task, policy) in sorted(rows.items()):
        result = evaluate(task, policy, episodes, seed_start, progress=False,
                          options=PolicyOptions(device='cpu'))
        write_json(result, out / f'{row}.json')
        print(f'{row}: {result["successes"]}/{episodes}', flush=True)


def episodes_of(path: Path) -> list[tuple]:
    """Return the per-episode outcome of a ``vrl eval`` JSON, without its wall time."""
    return [(e['seed'], e['success'], e['steps'], round(e['episode_return'], 9))
            for e in json.loads(path.read_text())['per_episode']]


def compare(before: Path, after: Path) -> bool:
    """Print a line per row; return whether every row has identical episodes."""
    same = True
    for path in sorted(before.glob('*.json')):
        other = after / path.name
        if not other.is_file():
            print(f'{path.stem}: missing in {after}')
            same = False
            continue
        first, second = episodes_of(path), episodes_of(other)
        differ = [(a, b) for a, b in zip(first, second) if a != b] + (
            [('lengths', len(first), len(second))] if len(first) != len(second) else [])
        same &= not differ
        print(f'{path.stem}: ' + ('identical' if not differ else f'DIFFERENT {differ}'))
    return same


def main(argv: list[str]) -> int:
    """Record a folder of fingerprints or compare two."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='action', required=True)
    rec = sub.add_parser('record', help='evaluate every shipped model and the expert')
    rec.add_argument('out', type=Path)
    rec.add_argument('--episodes', type=int, default=20)
    rec.add_argument('--seed-start', type=int, default=1000)
    cmp = sub.add_parser('compare', help='match two recorded folders episode by episode')
    cmp.add_argument('before', type=Path)
    cmp.add_argument('after', type=Path)
    args = parser.parse_args(argv)
    if args.action == 'record':
        record(args.out, args.episodes, args.seed_start)
        return 0
    return 0 if compare(args.before, args.after) else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
