r"""
``vrl train-residual``: refine a frozen diffusion BC policy with a PPO-trained residual (ResiP).

Example::

    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack --envs 8
    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack \\
        --total-steps 2000000 --resume
    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack2 \\
        --init-residual runs/rl/stack

``--base`` is a shipped model name (``vrl models``) or a state-based BC run
folder. Every residual-network and PPO setting is a flag too
(``--residual-scale 0.2``, ``--target-kl 0.02``); ``--residual key=value`` and
``--ppo key=value`` (JSON values) are the older spellings. The run folder
layout is :mod:`visual_rl_stack.core.run_layout`;
``vrl eval --policy RUN`` evaluates base + residual.
"""

import argparse

from visual_rl_stack.cli.overrides import add_deprecated_overrides
from visual_rl_stack.cli.settings_args import (add_run_control_arguments, add_settings_arguments,
                                               given_overrides, settings_from_args)
from visual_rl_stack.residual_policy.resip.config import (PPOConfig, RESIDUAL_DATA_FIELDS,
                                                          ResidualConfig, ResidualTrainSettings)
from visual_rl_stack.residual_policy.resip.env import reward_names

#: Flag spellings of earlier releases, kept working.
FLAG_ALIASES = {'base_inference_steps': ('--base-steps',)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-residual`` arguments: settings, network and PPO flags, run control."""
    parser.add_argument('--out', required=True, help='run folder to write')
    add_settings_arguments(parser, ResidualTrainSettings, aliases=FLAG_ALIASES,
                           choices={'reward': reward_names()})
    add_settings_arguments(parser.add_argument_group(
        'residual network', 'ResidualConfig fields (a resumed run keeps its own)'),
        ResidualConfig, skip=RESIDUAL_DATA_FIELDS, overrides=True)
    add_settings_arguments(parser.add_argument_group(
        'PPO', 'PPOConfig fields (a resumed run must be given the same)'), PPOConfig,
                           overrides=True)
    add_deprecated_overrides(parser, '--residual', 'residual_overrides')
    add_deprecated_overrides(parser, '--ppo', 'ppo_overrides')
    add_run_control_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``vrl train-residual`` and print a one-line summary."""
    from visual_rl_stack.residual_policy.resip.train_residual import train_residual
    settings = settings_from_args(ResidualTrainSettings, args)
    ppo = PPOConfig.from_dict({**PPOConfig().to_dict(), **dict(args.ppo_overrides),
                               **given_overrides(PPOConfig, args)})
    residual = {**dict(args.residual_overrides),
                **given_overrides(ResidualConfig, args, RESIDUAL_DATA_FIELDS)}
    summary = train_residual(args.out, settings, residual, ppo,
                             resume=args.resume, progress=not args.no_progress)
    start = 'frozen base' if args.init_residual is None else f'start: {args.init_residual}'
    print(f'residual on {args.task}: validation success {summary["baseline_val_success"]:.0%}'
          f' ({start}) -> best {summary["best_val_success"]:.0%} at '
          f'{summary["best_at_env_steps"]} env steps; {summary["env_steps"]} steps in '
          f'{summary["wall_s"] / 60:.1f} min; best residual in {args.out}/residual')
    return 0
