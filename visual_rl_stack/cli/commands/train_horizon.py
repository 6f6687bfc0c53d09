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

Every flag but ``--out``, ``--resume`` and ``--no-progress`` is a field of
:class:`visual_rl_stack.world_model.settings.HorizonTrainSettings`. A new run
refuses an ``--out`` that already holds one; a resumed run refuses other
settings than it was started with, but for how long it trains.
"""

import argparse
from pathlib import Path

from visual_rl_stack.cli.reward_flags import add_reward_setting
from visual_rl_stack.cli.settings_args import (add_run_control_arguments, add_settings_arguments,
                                               settings_from_args)
from visual_rl_stack.core.rewards import RECORDED
from visual_rl_stack.world_model.settings import HorizonTrainSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-horizon`` arguments: the settings' fields and run control."""
    parser.add_argument('--out', required=True, type=Path, help='run folder to write')
    add_settings_arguments(parser, HorizonTrainSettings, skip=('reward',))
    add_reward_setting(parser, HorizonTrainSettings, RECORDED)
    add_run_control_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Train the agent and print where the run is."""
    from visual_rl_stack.world_model.behavior.train_horizon import HorizonTrainer
    settings = settings_from_args(HorizonTrainSettings, args)
    summary = HorizonTrainer(settings, args.out, args.resume, not args.no_progress).run()
    print(f'{summary["env_steps"]} environment steps in {summary["seconds"]:.0f} s '
          f'({summary["reward"]} reward, imagination horizon {summary["imagination_horizon"]}); '
          f'validation success: best {summary["best_val_success"]}, final '
          f'{summary["final_val_success"]}')
    print(f'wrote {args.out}; evaluate with: vrl eval --task {args.task} --policy {args.out}')
    return 0
