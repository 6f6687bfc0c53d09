r"""
``vrl train-residual``: refine a frozen diffusion BC policy with a residual (ResiP PPO or ResFiT).

Example::

    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack --envs 8
    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack \\
        --total-steps 2000000 --resume
    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack2 \\
        --init-residual runs/rl/stack

``--algo resfit`` trains the residual off-policy (TD3-style, critic ensemble,
n-step returns, optional ``--demos`` bags in every batch): tens of thousands of
environment steps instead of hundreds of thousands. Flags named alike in the
PPO and ResFiT groups (``--residual-scale``, ``--gamma``, ``--actor-lr``, ...)
set the chosen learner's field; a flag of the other learner is refused.

``--base`` is a shipped model name (``vrl models``) or a state-based BC run
folder. Every residual-network and PPO setting is a flag too
(``--residual-scale 0.2``, ``--target-kl 0.02``); ``--residual key=value`` and
``--ppo key=value`` (JSON values) are the older spellings. The run folder
layout is :mod:`visual_rl_stack.core.run_layout`;
``vrl eval --policy RUN`` evaluates base + residual.
"""

import argparse
from dataclasses import fields

from visual_rl_stack.cli.overrides import add_deprecated_overrides
from visual_rl_stack.cli.reward_flags import add_reward_argument
from visual_rl_stack.cli.settings_args import (add_run_control_arguments, add_settings_arguments,
                                               given_overrides, settings_from_args)
from visual_rl_stack.residual_policy.resfit.config import RESFIT_DATA_FIELDS, ResFiTConfig
from visual_rl_stack.residual_policy.resip.config import (ALGOS, PPOConfig, RESIDUAL_DATA_FIELDS,
                                                          ResidualConfig, ResidualTrainSettings)

#: Fields the ResFiT learner shares by name with the PPO learner's configs (one flag each).
PPO_NAMES = tuple(sorted({f.name for f in fields(ResidualConfig)}
                         | {f.name for f in fields(PPOConfig)}))
#: Flag spellings of earlier releases, kept working.
FLAG_ALIASES = {'base_inference_steps': ('--base-steps',)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-residual`` arguments: settings, network and PPO flags, run control."""
    parser.add_argument('--out', required=True, help='run folder to write')
    add_settings_arguments(parser, ResidualTrainSettings, aliases=FLAG_ALIASES,
                           choices={'algo': ALGOS}, skip=('reward',))
    add_reward_argument(parser, ResidualTrainSettings.reward)
    add_settings_arguments(parser.add_argument_group(
        'residual network', 'ResidualConfig fields (a resumed run keeps its own)'),
        ResidualConfig, skip=RESIDUAL_DATA_FIELDS, overrides=True)
    add_settings_arguments(parser.add_argument_group(
        'PPO', 'PPOConfig fields (a resumed run must be given the same)'), PPOConfig,
                           overrides=True)
    add_settings_arguments(parser.add_argument_group(
        'ResFiT (--algo resfit)', 'ResFiTConfig fields; the ones named as above (e.g. '
        '--residual-scale, --gamma, --actor-lr) are listed there with their PPO defaults and '
        'set the ResFiT field with --algo resfit (a resumed run keeps its own)'), ResFiTConfig,
        skip=RESFIT_DATA_FIELDS + PPO_NAMES, overrides=True)
    add_deprecated_overrides(parser, '--residual', 'residual_overrides')
    add_deprecated_overrides(parser, '--ppo', 'ppo_overrides')
    add_run_control_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``vrl train-residual`` and print a one-line summary."""
    settings = settings_from_args(ResidualTrainSettings, args)
    resfit = given_overrides(ResFiTConfig, args, RESFIT_DATA_FIELDS)
    ppo_given = {**given_overrides(PPOConfig, args),
                 **given_overrides(ResidualConfig, args, RESIDUAL_DATA_FIELDS)}
    if settings.algo == 'resfit':
        _refuse_other_learner(ppo_given.keys() - resfit.keys(), 'ppo', 'resfit')
        if args.ppo_overrides or args.residual_overrides:
            raise SystemExit('--ppo and --residual set PPO settings; with --algo resfit give the '
                             'ResFiT flags')
        from visual_rl_stack.residual_policy.resfit.trainer import train_resfit
        summary = train_resfit(args.out, settings, resfit, resume=args.resume,
                               progress=not args.no_progress)
    else:
        _refuse_other_learner(resfit.keys() - ppo_given.keys(), 'resfit', 'ppo')
        from visual_rl_stack.residual_policy.resip.train_residual import train_residual
        ppo = PPOConfig.from_dict({**PPOConfig().to_dict(), **dict(args.ppo_overrides),
                                   **given_overrides(PPOConfig, args)})
        residual = {**dict(args.residual_overrides),
                    **given_overrides(ResidualConfig, args, RESIDUAL_DATA_FIELDS)}
        summary = train_residual(args.out, settings, residual, ppo,
                                 resume=args.resume, progress=not args.no_progress)
    start = 'frozen base' if args.init_residual is None else f'start: {args.init_residual}'
    print(f'residual ({settings.algo}) on {args.task}: validation success '
          f'{summary["baseline_val_success"]:.0%} ({start}) -> best '
          f'{summary["best_val_success"]:.0%} at {summary["best_at_env_steps"]} env steps; '
          f'{summary["env_steps"]} steps in {summary["wall_s"] / 60:.1f} min; best residual in '
          f'{args.out}/residual')
    return 0


def _refuse_other_learner(names, learner: str, chosen: str) -> None:
    """Exit with a message when flags of the learner not chosen were given."""
    if names:
        flags = ', '.join(sorted('--' + n.replace('_', '-') for n in names))
        raise SystemExit(f'{flags} set the {learner} learner; this run uses --algo {chosen}')
