"""``vrl eval``: success rate of a policy over a range of evaluation seeds."""

import argparse
import json
from pathlib import Path
import shlex
import sys

from visual_rl_stack.core.policy import PolicyOptions
from visual_rl_stack.core.records import write_json
from visual_rl_stack.core.rewards import PLANNER_STAGES
from visual_rl_stack.evaluation.episodes import CONTROLLERS, evaluate
from visual_rl_stack.residual_policy.resfit.config import UPDATE_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the ``vrl eval`` arguments."""
    parser.add_argument('--task', required=True, help='task name, e.g. lift or peg_insert')
    parser.add_argument('--policy', default='expert',
                        help='policy to evaluate: a built-in name '
                             f'({", ".join(sorted(CONTROLLERS))}), a shipped model (see '
                             '`vrl models`) or the path of a BC run folder or its checkpoint '
                             'folder')
    parser.add_argument('--episodes', type=int, default=10, help='number of episodes')
    parser.add_argument('--seed-start', type=int, default=1000,
                        help='first evaluation seed; episodes use seed-start .. +episodes-1')
    parser.add_argument('--json', type=Path, help='write the full result as JSON here')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    parser.add_argument('--device', default='auto',
                        help='device of a BC policy (auto, cpu, cuda, cuda:N)')
    parser.add_argument('--inference-steps', type=int, default=None,
                        help="DDIM steps per chunk for a BC policy (default: the checkpoint's)")
    parser.add_argument('--action-steps', type=int, default=None,
                        help='actions a BC policy executes from each chunk before re-planning '
                             "(default: the checkpoint's n_action_steps)")
    parser.add_argument('--warm-start', type=float, default=None, metavar='STRENGTH',
                        help='start each chunk from the unexecuted tail of the previous one, '
                             'noised STRENGTH (0-1] of the way along the schedule '
                             '(default: off, every chunk from pure noise)')
    parser.add_argument('--noise-scale', type=float, default=None, metavar='SCALE',
                        help='multiply the initial noise of every chunk by SCALE >= 0: 1 '
                             'samples the learned distribution, 0 makes the policy '
                             'deterministic (default: 1, or for a residual run the scale its '
                             'base was trained with)')
    parser.add_argument('--torch-threads', type=int, default=1,
                        help='torch threads of in-process inference (default 1: on a busy '
                             "2-core machine torch's default made chunks 3-16x slower, "
                             '230-1200 ms against 73 ms; raise it on a larger idle machine)')
    parser.add_argument('--via-ros', action='store_true',
                        help='run closed loop through the ROS graph in lockstep (sim node -> '
                             'camera node -> policy node -> sim node) instead of in-process')
    parser.add_argument('--finetune-out', default=None,
                        help='with --via-ros and a residual run: fine-tune the residual online '
                             '(PPO between episodes; a resfit run off-policy) and write the '
                             'result to this folder (a resfit run resumes from it)')
    parser.add_argument('--finetune-updates', choices=UPDATE_MODES, default='background',
                        help='with --finetune-out and a resfit run: run the updates in a '
                             'background thread as data arrives, or all between episodes')
    parser.add_argument('--finetune-utd', type=float, default=None,
                        help='with --finetune-out and a resfit run: updates per step '
                             "(default: the run's own)")
    parser.add_argument('--finetune-demos', default=None,
                        help='with --finetune-out and a resfit run: folder of demonstration '
                             'bags mixed into every batch (sparse reward)')
    parser.add_argument('--reward-topic', default=None,
                        help='with --finetune-out: the std_msgs/Float32 reward to fine-tune on, '
                             'e.g. /reward/dense (the KAGI reward of the affordance node; add '
                             '--extra-views front side); default: sparse /task/success')
    parser.add_argument('--stage-progress', action='store_true',
                        help="also record how far each episode got through the instruction's "
                             'staged plan (0-1; the planner_stages reward of the world model, '
                             'privileged state)')
    parser.add_argument('--extra-views', nargs='+', default=[],
                        help='with --via-ros: camera views the simulator renders besides the '
                             "policy's own (for the affordance node)")


def main(args: argparse.Namespace) -> int:
    """Run the evaluation and print a one-line summary."""
    if args.finetune_out and not args.via_ros:
        raise ValueError('--finetune-out fine-tunes in the policy node; add --via-ros')
    if args.finetune_demos and not args.finetune_out:
        raise ValueError('--finetune-demos are mixed into online fine-tuning; add --finetune-out')
    if args.reward_topic and not args.finetune_out:
        raise ValueError('--reward-topic is the reward of online fine-tuning; add --finetune-out')
    if args.extra_views and not args.via_ros:
        raise ValueError('--extra-views are rendered for nodes of the ROS graph; add --via-ros')
    if args.stage_progress and args.via_ros:
        raise ValueError('--stage-progress reads the simulator in process; drop --via-ros')
    if args.torch_threads < 1:
        raise ValueError(f'--torch-threads must be >= 1, got {args.torch_threads}')
    from visual_rl_stack.core.devices import limit_thread_torch
    limit_thread_torch(args.torch_threads)
    options = PolicyOptions(device=args.device, num_inference_steps=args.inference_steps,
                            action_steps=args.action_steps, warm_start=args.warm_start,
                            noise_scale=args.noise_scale)
    if args.via_ros:
        if args.policy in CONTROLLERS:
            raise ValueError('--via-ros runs a trained policy in the policy node; for the '
                             'scripted expert through ROS use `vrl demo`')
        from visual_rl_stack.evaluation.ros_eval import evaluate_via_ros, OnlineFinetune
        result = evaluate_via_ros(args.task, args.policy, args.episodes, args.seed_start,
                                  progress=not args.no_progress, options=options,
                                  finetune=OnlineFinetune(
                                      args.finetune_out, args.reward_topic,
                                      args.finetune_updates, args.finetune_utd,
                                      args.finetune_demos)
                                  if args.finetune_out else None,
                                  extra_views=args.extra_views)
    else:
        result = evaluate(args.task, args.policy, args.episodes, args.seed_start,
                          progress=not args.no_progress, options=options,
                          stage_progress=PLANNER_STAGES if args.stage_progress else None)
    result['command'] = shlex.join(['vrl', 'eval', *sys.argv[2:]]) if sys.argv[1:2] == [
        'eval'] else None
    if args.json:
        write_json(result, args.json)
    summary = {k: result[k] for k in ('task', 'policy', 'episodes', 'successes', 'success_rate',
                                      'mean_episode_length', 'mean_stage_progress')
               if result.get(k) is not None}
    if 'inference_latency_ms' in result:
        summary['inference_latency_ms'] = result['inference_latency_ms']
    print(json.dumps(summary))
    return 0
