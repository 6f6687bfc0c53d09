r"""
``vrl train-horizon``: an actor-critic trained in a world model's imagination (RoboHorizon).

Example::

    vrl train-horizon --task stack --world-model runs/wm/stack --out runs/horizon/stack_staged \
        --reward planner_stages --env-steps 20000 --time-limit-min 30
    vrl eval --task stack --policy runs/horizon/stack_staged --episodes 100 --seed-start 1000

The actor clones the demonstrations the world model was trained on, then
alternates real rollouts in worker processes with RSSM and actor-critic
updates (imagination horizon = the demonstrations' key-horizon, within 5-15
steps). ``--reward planner_stages`` pays the planner's staged reward,
``sparse`` only success. The run folder (``kind: world_model``) opens with ``vrl eval``
and the policy node; ``--resume`` continues it.
"""

import argparse
from pathlib import Path

from visual_rl_stack.cli.reward_flags import add_reward_argument
from visual_rl_stack.core.rewards import PLANNER_STAGES, RECORDED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-horizon`` arguments to ``parser``."""
    parser.add_argument('--task', required=True, help='task to train on, e.g. stack')
    parser.add_argument('--world-model', required=True, type=Path,
                        help='world-model run folder (vrl train-world-model)')
    parser.add_argument('--out', required=True, type=Path, help='run folder to write')
    add_reward_argument(parser, PLANNER_STAGES, RECORDED, 'reward to learn')
    parser.add_argument('--env-steps', type=int, default=20000, help='environment-step budget')
    parser.add_argument('--num-envs', type=int, default=2, help='worker processes')
    parser.add_argument('--collect-steps', type=int, default=50,
                        help='steps per worker between training phases')
    parser.add_argument('--updates', type=int, default=25, help='updates per training phase')
    parser.add_argument('--batch', type=int, default=16, help='windows per batch')
    parser.add_argument('--length', type=int, default=24, help='steps per window')
    parser.add_argument('--bc-steps', type=int, default=500,
                        help='behaviour-cloning steps before the first rollout')
    parser.add_argument('--bc-weight', type=float, default=1.0,
                        help="weight of the behaviour-cloning term in the actor's loss")
    parser.add_argument('--entropy', type=float, default=3e-4, help='entropy bonus weight')
    parser.add_argument('--horizon', type=int,
                        help='imagination horizon (default: the key-horizon, within 5-15)')
    parser.add_argument('--imagine-starts', type=int, default=128,
                        help='posterior states imagination starts from per update')
    parser.add_argument('--eval-every', type=int, default=10,
                        help='training phases between validation runs')
    parser.add_argument('--eval-episodes', type=int, default=10, help='validation episodes')
    parser.add_argument('--eval-seed-start', type=int, default=2000,
                        help='first validation seed (as residual RL validates)')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--time-limit-min', type=float, help='stop after this many minutes')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads of the learner (the workers render on the rest)')
    parser.add_argument('--resume', action='store_true', help='continue the run in --out')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bars')


def main(args: argparse.Namespace) -> int:
    """Train the agent and print where the run is."""
    from visual_rl_stack.world_model.behavior.train_horizon import (HorizonSettings,
                                                                    HorizonTrainer)
    settings = HorizonSettings(
        args.task, str(args.world_model), args.reward, args.env_steps, args.num_envs,
        args.collect_steps, args.updates, args.batch, args.length, args.bc_steps,
        args.bc_weight, args.entropy, args.horizon, args.imagine_starts, args.eval_every,
        args.eval_episodes, args.eval_seed_start, args.seed, args.time_limit_min, args.threads)
    summary = HorizonTrainer(settings, args.out, args.resume, not args.no_progress).run()
    print(f'{summary["env_steps"]} environment steps in {summary["seconds"]:.0f} s '
          f'({summary["reward"]} reward, imagination horizon {summary["imagination_horizon"]}); '
          f'validation success: best {summary["best_val_success"]}, final '
          f'{summary["final_val_success"]}')
    print(f'wrote {args.out}; evaluate with: vrl eval --task {args.task} --policy {args.out}')
    return 0
