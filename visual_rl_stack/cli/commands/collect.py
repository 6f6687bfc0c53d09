"""``vrl collect``: record scripted-expert demonstrations as rosbag2 (MCAP) bags."""

import argparse
import json
from pathlib import Path

from visual_rl_stack.data.bags import INDEX_FILE
from visual_rl_stack.data.collect import collect
from visual_rl_stack.data.recorder import DEFAULT_VIEWS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl collect`` arguments to ``parser``."""
    parser.add_argument('--task', required=True, help='task name, e.g. lift')
    parser.add_argument('--episodes', type=int, default=10, help='number of episodes')
    parser.add_argument('--out', type=Path, required=True, help='output folder for the bags')
    parser.add_argument('--seed-start', type=int, default=0, help='seed of the first episode')
    parser.add_argument('--views', nargs='+', default=list(DEFAULT_VIEWS),
                        help='camera views to record')
    parser.add_argument('--noise', type=float, default=0.0,
                        help='expert action noise (fraction of the action limits)')
    parser.add_argument('--approach-jitter', type=float, default=0.0,
                        help="random horizontal offset (m) of grasping experts' pre-grasp "
                             'waypoint, so that descents show corrections')
    parser.add_argument('--action-mode', choices=('delta', 'absolute'), default='delta',
                        help='command layout the expert uses')
    parser.add_argument('--width', type=int, default=128, help='image width (pixels)')
    parser.add_argument('--height', type=int, default=128, help='image height (pixels)')


def main(args: argparse.Namespace) -> int:
    """Run ``vrl collect`` from parsed arguments and print a one-line summary."""
    out_dir = collect(args.task, args.episodes, args.out, args.seed_start, args.views,
                      args.noise, args.action_mode, args.width, args.height,
                      args.approach_jitter)
    index = json.loads((out_dir / INDEX_FILE).read_text())
    done = [e for e in index['episodes'] if not e['interrupted']]
    successes = sum(e['success'] for e in done)
    print(f'collected {len(done)} {args.task} episodes in {out_dir}: '
          f'{successes}/{len(done)} successful, {sum(e["steps"] for e in done)} steps')
    return 0
