"""``vrl replay-eval``: replay episode bags through the nodes, score them, write a report."""

import argparse
from pathlib import Path
import shlex
import sys

from visual_rl_stack.cli.main import INTERRUPTED_EXIT
from visual_rl_stack.evaluation.replay.evaluate import replay_evaluate
from visual_rl_stack.evaluation.replay.session import ReplaySettings, STAGES_ONLY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl replay-eval`` arguments to ``parser``."""
    parser.add_argument('--bags', type=Path, required=True,
                        help='a bag, or a folder of episode bags (vrl collect, vrl record)')
    parser.add_argument('--policy', default=None,
                        help='policy run in shadow mode: a shipped model (vrl models) or a BC, '
                             'residual or world-model run folder')
    parser.add_argument('--affordance', default=None, metavar='BACKEND',
                        help='affordance backend the affordance node asks (e.g. keypoint_net)')
    parser.add_argument('--world-model', default=None, metavar='RUN',
                        help='world-model run (vrl train-world-model) predicting the reward; '
                             f'{STAGES_ONLY!r}: the stage timeline only, without a model')
    parser.add_argument('--out', type=Path, required=True,
                        help='folder of the report (summary.json, report.md, index.html, PNGs)')
    parser.add_argument('--device', default='auto', help='inference device (auto, cpu, cuda)')
    parser.add_argument('--step-timeout', type=float, default=20.0,
                        help='seconds a node may take to answer one step (default 20)')
    parser.add_argument('--query-every', type=int, default=10,
                        help='ask the affordance node again every this many steps, for '
                             'keypoint stability (0: only at the episode start; default 10)')
    parser.add_argument('--deployed-limits', action='store_true',
                        help="judge the safety filter with config/policy_node.yaml's speed "
                             "limits (a robot's) instead of the simulator's per-step limits")
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def main(args: argparse.Namespace) -> int:
    """Run ``vrl replay-eval`` from parsed arguments."""
    if args.step_timeout <= 0 or args.query_every < 0:
        raise ValueError('--step-timeout must be positive and --query-every at least 0')
    settings = ReplaySettings(policy=args.policy, affordance=args.affordance,
                              world_model=args.world_model, device=args.device,
                              step_timeout=args.step_timeout, query_every=args.query_every,
                              deployed_limits=args.deployed_limits)
    document = replay_evaluate(args.bags, settings, args.out, progress=not args.no_progress,
                               command=shlex.join(['vrl', *sys.argv[1:]]))
    if 'interrupted' in document:
        return INTERRUPTED_EXIT
    if not document['summary']['replayed']:
        reasons = '; '.join(f'{e["episode"]}: {e["error"]}' for e in document['episodes']
                            if 'error' in e)
        print(f'replay-eval: no episode could be replayed ({reasons})', file=sys.stderr)
        return 1
    return 0
