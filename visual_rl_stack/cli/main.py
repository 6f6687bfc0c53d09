"""
The ``vrl`` command: training, evaluation, data collection, bringup and benchmarks.

Each sub-command lives in its own module and is imported only when used, so
``vrl --help`` is instant and a missing optional dependency only affects the
command that needs it.
"""

import argparse
import importlib
import sys
from types import ModuleType
from typing import Optional

COMMANDS_PACKAGE = 'visual_rl_stack.cli.commands'
#: Exit code of a command stopped by Ctrl-C or SIGTERM, as a shell reports one (128 + SIGINT).
INTERRUPTED_EXIT = 130
#: sub-command -> (module in :data:`COMMANDS_PACKAGE`, help); each has add_arguments and main.
COMMANDS = {
    'eval': ('eval', 'evaluate a policy on a task over a range of seeds'),
    'replay-eval': ('replay_eval', 'replay episode bags through the nodes (policy in shadow '
                    'mode, affordance, world model), score them and write a report'),
    'collect': ('collect', 'record scripted-expert demonstrations as rosbag2 (MCAP) bags'),
    'record': ('record', 'record ROS topics to a rosbag2 (MCAP) bag until Ctrl-C'),
    'play': ('play', 'play rosbag2 bags onto DDS at their recorded timing, or in lockstep'),
    'bringup': ('bringup', 'run a node graph (sim, real, replay) in one process'),
    'call': ('call', 'activate or deactivate the policy node, step or reset a lockstep '
             'simulator (the ros2 service calls, without ros2)'),
    'bench': ('bench', 'measure simulator, ROS and perception throughput and latency'),
    'demo': ('demo', 'the main job: expert episodes through the ROS graph, bags and a report'),
    'train-bc': ('train_bc', 'behaviour-clone a diffusion policy from a folder of expert bags'),
    'train-residual': ('train_residual',
                       'refine a frozen BC policy with a PPO-trained residual (ResiP)'),
    'distill': ('distill', 'distil a state-based teacher into an image-based diffusion student'),
    'relabel': ('relabel', 'KAGI dense rewards for recorded episode bags, one query each'),
    'train-affordance': ('train_affordance',
                         'train the default KAGI keypoint affordance model on sim scenes'),
    'reward-quality': ('reward_quality', 'does a dense reward (kagi, planner_stages) rise on '
                       'successes and separate them from failures'),
    'affordance': ('affordance',
                   'measure an affordance backend against privileged keypoints on a task'),
    'curves': ('curves', 'validation curves of groups of runs in one PNG, and who got there '
               'first'),
    'train-world-model': ('train_world_model', 'train the world model (multi-view MAE, then '
                          'RSSM latent dynamics) from demonstration bags (RoboHorizon)'),
    'train-horizon': ('train_horizon', 'train an actor-critic in a world model, alternating '
                      'with real rollouts (RoboHorizon)'),
    'stages': ('stages', 'the numbered stages a planner makes of an instruction (RoboHorizon)'),
    'keyframes': ('keyframes', 'key frames of recorded episode bags, with a PNG strip each'),
    'models': ('models', 'list the shipped trained models, or ship a run'),
}


def command_module(name: str) -> ModuleType:
    """Import the module of sub-command ``name``."""
    return importlib.import_module(f'{COMMANDS_PACKAGE}.{COMMANDS[name][0]}')


def build_parser(chosen: Optional[str] = None) -> argparse.ArgumentParser:
    """Build the parser; only the ``chosen`` sub-command's module is imported."""
    parser = argparse.ArgumentParser(prog='vrl', description=__doc__.strip().splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, (_module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            command_module(name).add_arguments(command)
    return parser


def main(argv: Optional[list] = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        code = command_module(args.command).main(args)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return INTERRUPTED_EXIT
    except (ValueError, FileNotFoundError) as error:
        print(f'vrl {args.command}: error: {error}', file=sys.stderr)
        return 2
    return int(code or 0)
