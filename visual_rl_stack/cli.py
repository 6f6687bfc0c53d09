"""
The ``vrl`` command: training, evaluation, data collection, bringup and benchmarks.

Each sub-command lives in its own module and is imported only when used, so
``vrl --help`` is instant and a missing optional dependency only affects the
command that needs it.
"""

import argparse
import importlib
import sys
from typing import Optional

#: sub-command -> (module, function adding its arguments, function running it, help).
COMMANDS = {
    'eval': ('visual_rl_stack.eval_command', 'add_arguments', 'main',
             'evaluate a policy on a task over a range of seeds'),
    'collect': ('visual_rl_stack.collect', 'add_collect_arguments', 'collect_main',
                'record scripted-expert demonstrations as rosbag2 (MCAP) bags'),
    'record': ('visual_rl_stack.bag_recorder_node', 'add_record_arguments',
               'record_main_from_args',
               'record ROS topics to a rosbag2 (MCAP) bag until Ctrl-C'),
    'bringup': ('visual_rl_stack.bringup', 'add_bringup_arguments', 'bringup_main',
                'run a node graph (sim, real, replay) in one process'),
    'bench': ('visual_rl_stack.benchmarks', 'add_arguments', 'main',
              'measure simulator, ROS and perception throughput and latency'),
    'demo': ('visual_rl_stack.demo', 'add_arguments', 'main',
             'the main job: expert episodes through the ROS graph, bags and a report'),
    'train-bc': ('visual_rl_stack.train_bc_command', 'add_arguments', 'main',
                 'behaviour-clone a diffusion policy from a folder of expert bags'),
    'train-residual': ('visual_rl_stack.train_residual_command', 'add_arguments', 'main',
                       'refine a frozen BC policy with a PPO-trained residual (ResiP)'),
    'distill': ('visual_rl_stack.distill', 'add_arguments', 'main',
                'distil a state-based teacher into an image-based diffusion student'),
    'models': ('visual_rl_stack.models', 'add_arguments', 'main',
               'list the shipped trained models, or ship a run'),
}


def build_parser(chosen: Optional[str] = None) -> argparse.ArgumentParser:
    """Build the parser; only the ``chosen`` sub-command's module is imported."""
    parser = argparse.ArgumentParser(prog='vrl', description=__doc__.strip().splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, (module_name, add_args, _run, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            getattr(importlib.import_module(module_name), add_args)(command)
    return parser


def main(argv: Optional[list] = None) -> int:
    """Parse ``argv`` and run the chosen sub-command; return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    module_name, _add, run, _help = COMMANDS[args.command]
    try:
        code = getattr(importlib.import_module(module_name), run)(args)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as error:
        print(f'vrl {args.command}: error: {error}', file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == '__main__':
    sys.exit(main())
