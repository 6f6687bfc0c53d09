"""``vrl eval``: success rate of a policy over a range of evaluation seeds."""

import argparse
import json
from pathlib import Path

from .evaluation import evaluate, POLICY_FACTORIES, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the ``vrl eval`` arguments."""
    parser.add_argument('--task', required=True, help='task name, e.g. lift or peg_insert')
    parser.add_argument('--policy', default='expert',
                        help=f'policy to evaluate (known: {", ".join(sorted(POLICY_FACTORIES))})')
    parser.add_argument('--episodes', type=int, default=10, help='number of episodes')
    parser.add_argument('--seed-start', type=int, default=1000,
                        help='first evaluation seed; episodes use seed-start .. +episodes-1')
    parser.add_argument('--json', type=Path, help='write the full result as JSON here')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def main(args: argparse.Namespace) -> int:
    """Run the evaluation and print a one-line summary."""
    result = evaluate(args.task, args.policy, args.episodes, args.seed_start,
                      progress=not args.no_progress)
    if args.json:
        write_json(result, args.json)
    summary = {k: result[k] for k in ('task', 'policy', 'episodes', 'successes', 'success_rate',
                                      'mean_episode_length')}
    print(json.dumps(summary))
    return 0
