r"""
``vrl reward-quality``: whether a dense reward rises on successes and flags failures.

Example::

    vrl reward-quality --task pick_place --sources expert expert:0.6 bc_state_pick_place \\
        --episodes 30 --seed-start 1000 --json runs/kagi/reward_quality.json
    vrl reward-quality --reward planner_stages --task stack3 --sources expert expert:0.5 \\
        --json runs/stages/reward_quality_stack3.json

A source is ``expert``, ``expert:NOISE`` (the scripted expert with action
noise, a fraction of the action limits) or a state policy (shipped name or
run folder). The reward (one with a dense level: ``kagi``, the
keypoint-affordance progress, or ``planner_stages``, the stage planner's)
is computed as ``vrl train-residual --reward NAME`` computes it; the JSON
has the monotonicity on successful episodes, the AUC of the final level for
success against failure, for the staged reward the agreement of its stage
count with the task's, and every episode's trace; a PNG beside it draws them.
"""

import argparse
from pathlib import Path

from visual_rl_stack.cli.reward_flags import add_reward_argument
from visual_rl_stack.core.rewards import KAGI, LEVEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl reward-quality`` arguments to ``parser``."""
    parser.add_argument('--task', required=True, help='task, e.g. pick_place')
    parser.add_argument('--sources', nargs='+', default=['expert', 'expert:0.6'],
                        help='episode sources: expert, expert:NOISE or state policies '
                        '(default: expert expert:0.6)')
    parser.add_argument('--episodes', type=int, default=20, help='episodes per source')
    parser.add_argument('--seed-start', type=int, default=1000, help='first seed')
    add_reward_argument(parser, KAGI, LEVEL, 'the dense reward to judge')
    parser.add_argument('--backend', default='keypoint_net', help='kagi: keypoint backend')
    parser.add_argument('--model', help='kagi: local model folder of the backend (default: '
                        'none, for a backend that ships its weights)')
    parser.add_argument('--planner', default='rules', help='planner_stages: stage planner')
    parser.add_argument('--planner-model',
                        help='planner_stages: local model folder of the planner')
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='fall of the progress per step still counted as monotone')
    parser.add_argument('--json', required=True, type=Path, help='JSON file to write')
    parser.add_argument('--plot', type=Path, help='PNG to write (default: beside the JSON)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def main(args: argparse.Namespace) -> int:
    """Score every source's episodes, write the JSON and PNG, print the measures."""
    import json

    from tqdm import tqdm
    from visual_rl_stack.core.rewards import make_reward
    from visual_rl_stack.evaluation.reward_quality import (episode_rows, plot_quality,
                                                           score_source, summarise)
    if args.episodes < 1:
        raise ValueError('--episodes must be at least 1')
    options = ({'backend': args.backend, 'model': args.model} if args.reward == KAGI
               else {'planner': args.planner, 'model': args.planner_model})
    reward = make_reward(args.reward, args.task, options)
    source_name = args.backend if args.reward == KAGI else args.planner
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    bar = tqdm(total=args.episodes * len(args.sources), desc=f'reward quality {args.task}',
               disable=args.no_progress)
    episodes = []
    for source in args.sources:
        episodes += score_source(args.task, source, seeds, reward, bar.update)
    bar.close()
    summary = summarise(episodes, args.tolerance)
    report = {'task': args.task, 'reward': args.reward, 'backend': source_name,
              'sources': args.sources,
              'seed_start': args.seed_start, **summary, 'per_episode': episode_rows(episodes)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + '\n')
    plot = args.plot or args.json.with_suffix('.png')
    plot_quality(episodes, plot, f'{args.reward} dense level on {args.task} ({source_name})')
    auc = summary['auc_final_phi']
    print(f'{summary["planned"]}/{summary["episodes"]} episodes planned; '
          f'{summary["successes"]} successes, {summary["failures"]} failures')
    print(f'monotone steps on successes: median {_pct(summary["monotone_step_fraction_median"])}'
          f', worst {_pct(summary["monotone_step_fraction_min"])}; Spearman with time: median '
          f'{_num(summary["spearman_with_time_median"])}; AUC of final progress: {_num(auc)}')
    if summary['stage_agreement_median'] is not None:
        agreement = summary['stage_agreement_median']
        print(f"stage count = task's stages_completed: median {_pct(agreement)} of steps, "
              f'worst {_pct(summary["stage_agreement_min"])}')
    print(f'wrote {args.json} and {plot}')
    return 0


def _pct(value) -> str:
    return 'n/a' if value is None else f'{value:.0%}'


def _num(value) -> str:
    return 'n/a' if value is None else f'{value:.3f}'
