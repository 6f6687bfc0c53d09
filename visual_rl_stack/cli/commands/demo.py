"""``vrl demo``: the main job, expert and trained-policy episodes through the ROS graph."""

import argparse
import json
from pathlib import Path

from visual_rl_stack.evaluation.demo import DEFAULT_POLICIES, DEFAULT_TASKS, run_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the ``vrl demo`` arguments."""
    parser.add_argument('--out', type=Path, default=Path('runs/demo'), help='report folder')
    parser.add_argument('--tasks', nargs='+', default=list(DEFAULT_TASKS), help='tasks to run')
    parser.add_argument('--episodes', type=int, default=2, help='episodes per task')
    parser.add_argument('--seed-start', type=int, default=1000,
                        help='first seed (evaluation seeds start at 1000)')
    parser.add_argument('--policies', nargs='*', default=list(DEFAULT_POLICIES),
                        help='shipped models (see `vrl models`) or run folders to run '
                             'through the policy node; none: skip')
    parser.add_argument('--policy-episodes', type=int, default=3,
                        help='episodes per policy')


def main(args: argparse.Namespace) -> int:
    """Run the demo and print where the report is."""
    report = run_demo(args.out, args.tasks, args.episodes, args.seed_start, args.policies,
                      args.policy_episodes)
    rates = {t: r['success_rate'] for t, r in report['tasks'].items()}
    rates.update({p['policy']: p['success_rate'] for p in report['policies']})
    print(json.dumps(rates))
    print(f'report: {args.out / "report.md"}')
    return 0
