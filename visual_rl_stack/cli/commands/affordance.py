"""
``vrl affordance``: how close an affordance backend's keypoints come to the privileged truth.

Example::

    vrl affordance --task stack --episodes 100 --seed-start 1000 --json runs/aff_stack.json

Each seed resets the task with randomisation on (as the keypoint model was
trained), asks the backend (default ``keypoint_net``, the shipped model) and
lifts its keypoints to the world; see :mod:`visual_rl_stack.vlm_affordance.accuracy`.
"""

import argparse
import json
from pathlib import Path
import shlex
import sys

from visual_rl_stack.vlm_affordance.backends import BACKENDS
from visual_rl_stack.vlm_affordance.keypoint_model.config import EVALUATION_SEED, TASKS

#: The headline numbers printed after a run.
SUMMARY_KEYS = ('task', 'backend', 'episodes', 'within_2cm', 'median_error_m',
                'target_median_error_m', 'failures', 'latency_ms')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the ``vrl affordance`` arguments."""
    parser.add_argument('--task', required=True, choices=TASKS, help='task to measure on')
    parser.add_argument('--episodes', type=int, default=100, help='number of scenes (seeds)')
    parser.add_argument('--seed-start', type=int, default=EVALUATION_SEED,
                        help='first seed; scenes use seed-start .. +episodes-1 (training '
                             'used 0-999)')
    parser.add_argument('--json', type=Path, help='write the full result as JSON here')
    parser.add_argument('--backend', default='keypoint_net', choices=sorted(BACKENDS),
                        help='affordance backend')
    parser.add_argument('--model', default=None,
                        help='model of the backend: a folder, or for keypoint_net a shipped '
                             'model name (default: the shipped affordance_keypoints)')
    parser.add_argument('--save-prompts', type=Path, default=None,
                        help='write each prompt (images and prompt.json) under this folder')
    parser.add_argument('--snap', action='store_true',
                        help='snap grasps onto the nearest candidate as the MOKA validation '
                             "does (default: keep the backend's pixel)")
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def main(args: argparse.Namespace) -> int:
    """Run the measurement and print the headline numbers as JSON."""
    from tqdm import tqdm
    from visual_rl_stack.core.records import write_json
    from visual_rl_stack.vlm_affordance.accuracy import evaluate_affordance
    from visual_rl_stack.vlm_affordance.backends import open_backend
    backend = open_backend(args.backend, args.model)
    with tqdm(total=args.episodes, desc=f'affordance {args.task}',
              disable=args.no_progress) as bar:
        result = evaluate_affordance(backend, args.task, args.episodes, args.seed_start,
                                     args.save_prompts, args.snap, bar.update)
    result['model'] = args.model
    result['command'] = (shlex.join(['vrl', 'affordance', *sys.argv[2:]])
                         if sys.argv[1:2] == ['affordance'] else None)
    if args.json:
        write_json(result, args.json)
    print(json.dumps({k: result[k] for k in SUMMARY_KEYS}))
    return 0
