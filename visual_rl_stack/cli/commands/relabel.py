r"""
``vrl relabel``: KAGI dense rewards for recorded episode bags, one query per episode.

Example::

    vrl relabel --bags data/lift --out data/lift_kagi
    vrl relabel --bags data/lift --out data/lift_kagi --backend qwen2_5_vl \\
        --model models/qwen2.5-vl-3b

Each bag gets ``<bag>.reward.json`` (per step: stamp, sparse, dense, combined
reward and waypoint progress; the waypoints and the query diagnostic) and
``<bag>.reward.png`` in ``--out``. A bag whose views cannot be planned from
keeps its sparse reward, and its sidecar says why.
"""

import argparse
from pathlib import Path

DEFAULT_BACKEND = 'keypoint_net'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl relabel`` arguments to ``parser``."""
    parser.add_argument('--bags', required=True, type=Path,
                        help='folder of episode bags (vrl collect output)')
    parser.add_argument('--out', required=True, type=Path, help='folder for the sidecar files')
    parser.add_argument('--backend', default=DEFAULT_BACKEND,
                        help=f'keypoint backend (default: {DEFAULT_BACKEND})')
    parser.add_argument('--model', help='local model folder of the backend (default: none, '
                        'for a backend that ships its weights)')
    parser.add_argument('--views', nargs='+', default=['front', 'side'],
                        help='views prompted and lifted from (default: front side)')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='dense reward scale, in (0, 1) (default: 0.5)')
    parser.add_argument('--epsilon', type=float, default=0.03,
                        help='distance (m) at which a waypoint is reached (default: 0.03)')
    parser.add_argument('--potential', action='store_true',
                        help='potential-based shaping instead of the progress itself')
    parser.add_argument('--log', type=Path, help='JSONL file for every raw model reply')


def main(args: argparse.Namespace) -> int:
    """Relabel the bags and print one line per episode."""
    from visual_rl_stack.vlm_affordance.backends import backend_opener
    from visual_rl_stack.vlm_affordance.dense_reward import RewardSettings
    from visual_rl_stack.vlm_affordance.episode_affordance import EpisodeAffordance
    from visual_rl_stack.vlm_affordance.relabel_bags import relabel_folder
    episode = EpisodeAffordance(
        backend_opener(args.backend, args.model), args.backend, args.views,
        RewardSettings(epsilon=args.epsilon, alpha=args.alpha, potential=args.potential),
        log_path=args.log)
    rows = relabel_folder(args.bags, args.out, episode)
    for row in rows:
        print(f'{row["bag"]}: {row["steps"]} steps, return {row["return"]:.3f} '
              f'({row["diagnostic"]})')
    print(f'{len(rows)} episodes relabelled into {args.out}')
    return 0
