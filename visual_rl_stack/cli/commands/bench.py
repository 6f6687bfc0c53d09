"""``vrl bench``: simulator, ROS, perception, policy and RL throughput and latency."""

import argparse
from pathlib import Path

from visual_rl_stack.bench.benchmarks import (bench_perception, bench_policy, bench_rl, bench_sim,
                                              bench_world_model, SUITES)
from visual_rl_stack.core.records import machine_description, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the ``vrl bench`` arguments."""
    parser.add_argument('suite', choices=SUITES, help='what to measure')
    parser.add_argument('--task', default='lift', help='scene used for the sim suite')
    parser.add_argument('--steps', type=int, default=300, help='control steps per measurement')
    parser.add_argument('--views', nargs='*', default=['front', 'side', 'wrist'],
                        help='cameras rendered in the "with rendering" runs')
    parser.add_argument('--size', type=int, default=128, help='camera width and height')
    parser.add_argument('--repeats', type=int, default=3,
                        help='interleaved runs per sim measurement (the best is kept)')
    parser.add_argument('--frames', type=int, default=200, help='frames for the latency run')
    parser.add_argument('--policy-state', type=Path, metavar='RUN',
                        help='shipped model name, state BC run or checkpoint for the policy suite '
                             '(default: default config, random weights)')
    parser.add_argument('--policy-image', type=Path, metavar='RUN',
                        help='shipped model name, image BC run or checkpoint for the policy suite '
                             '(default: front+wrist 96x96, random weights)')
    parser.add_argument('--chunks', type=int, default=50,
                        help='timed chunk inferences per DDIM step count (policy suite)')
    parser.add_argument('--rl-task', default='peg_insert', help='task of the rl suite')
    parser.add_argument('--rl-base', default='bc_state_peg_insert',
                        help='frozen base of the rl suite (shipped name or BC run)')
    parser.add_argument('--rl-envs', type=int, default=8, help='worker envs of the rl suite')
    parser.add_argument('--rl-iterations', type=int, default=3,
                        help='PPO iterations timed in the rl suite (100 steps per env each)')
    parser.add_argument('--wm-task', default='stack', help='task of the world-model suite')
    parser.add_argument('--world-model', type=Path, metavar='RUN',
                        help='world-model run whose MAE the world-model suite also times')
    parser.add_argument('--wm-episodes', type=int, default=3,
                        help='expert episodes of the world-model suite')
    parser.add_argument('--soak-minutes', type=float, default=60.0,
                        help='minutes of each soak run (graph at 10 Hz, policy active)')
    parser.add_argument('--soak-task', default='push', help='task of the soak runs')
    parser.add_argument('--soak-policy', default='bc_state_push',
                        help='policy the soak runs keep active (shipped name or run)')
    parser.add_argument('--soak-camera-hz', type=float, nargs='+', default=[0.0, 100.0],
                        help='one soak run per rate of the 640x480 camera load beside the graph '
                             '(0: none)')
    parser.add_argument('--soak-sample-s', type=float, default=60.0,
                        help='seconds between memory samples in the soak runs')
    parser.add_argument('--plot', type=Path, help='soak: write the memory curves here (PNG)')
    parser.add_argument('--json', type=Path, help='write the results here')


def main(args: argparse.Namespace) -> int:
    """Run the chosen suite(s) and write JSON."""
    results = {'machine': machine_description(), 'args': {
        'task': args.task, 'steps': args.steps, 'views': args.views, 'size': args.size,
        'repeats': args.repeats, 'chunks': args.chunks,
        'policy_state': args.policy_state and str(args.policy_state),
        'policy_image': args.policy_image and str(args.policy_image),
        'rl_task': args.rl_task, 'rl_base': args.rl_base, 'rl_envs': args.rl_envs,
        'rl_iterations': args.rl_iterations, 'wm_task': args.wm_task,
        'world_model': args.world_model and str(args.world_model),
        'soak_minutes': args.soak_minutes, 'soak_task': args.soak_task,
        'soak_policy': args.soak_policy, 'soak_camera_hz': args.soak_camera_hz}}
    if args.suite in ('sim', 'all'):
        results['sim'] = bench_sim(args.task, args.steps, args.views, args.size, args.repeats)
    if args.suite in ('perception', 'all'):
        results['perception'] = bench_perception(args.frames, args.views, args.size)
    if args.suite in ('policy', 'all'):
        results['policy'] = bench_policy(args.policy_state, args.policy_image, args.chunks)
    if args.suite in ('rl', 'all'):
        results['rl'] = bench_rl(args.rl_task, args.rl_base, args.rl_envs, args.rl_iterations)
    if args.suite in ('world-model', 'all'):
        results['world_model'] = bench_world_model(args.wm_task, args.world_model,
                                                   args.wm_episodes)
    if args.suite == 'soak':
        from visual_rl_stack.bench.soak import plot_memory, soak
        results['soak'] = [soak(args.soak_task, args.soak_policy, args.soak_minutes, hz,
                                args.soak_sample_s) for hz in args.soak_camera_hz]
        for run in results['soak']:
            grown = {n: m['growth'] for n, m in run['memory'].items()}
            print(f'soak at {run["camera_hz"]:g} Hz load: {run["control_steps"]} steps '
                  f'({run["steps_per_s"]:.2f}/s), {run["missed_steps"]} missed, '
                  f'{sum(run["diagnostic_errors"].values())} ERROR diagnostics, memory growth '
                  + ', '.join(f'{n} {g:+.1%}' if g is not None else f'{n} -'
                              for n, g in sorted(grown.items())))
        if args.plot:
            plot_memory(results['soak'], args.plot)
    if args.json:
        write_json(results, args.json)
        print(f'wrote {args.json}')
    return 0
