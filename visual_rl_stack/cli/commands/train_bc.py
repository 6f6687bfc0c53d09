"""
``vrl train-bc``: behaviour-clone a diffusion policy from a folder of expert bags.

Example::

    vrl train-bc --task lift --data data/lift --obs state --out runs/bc --steps 20000
    vrl train-bc --task lift --data data/lift --obs state --out runs/bc --steps 30000 --resume

Every policy setting the data does not decide is a flag too (``--horizon 32``,
``--down-dims 16 32 64``, ``--state-features relative``); a resumed run keeps
its own unless one is given. ``--set key=value`` (JSON value) is the older
spelling of the same overrides. The run folder layout is
:mod:`visual_rl_stack.core.run_layout`.
"""

import argparse
import json
from pathlib import Path

from visual_rl_stack.cli.policy_flags import add_policy_arguments, policy_overrides
from visual_rl_stack.cli.settings_args import (add_run_control_arguments, add_settings_arguments,
                                               settings_from_args)
from visual_rl_stack.residual_policy.diffusion_bc.model.config import OBS_MODES
from visual_rl_stack.residual_policy.diffusion_bc.training.config import BCTrainSettings

#: Flag spellings of earlier releases, kept working.
FLAG_ALIASES = {'obs_mode': ('--obs',)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-bc`` arguments: the settings' fields, policy settings, run control."""
    parser.add_argument('--out', type=Path, required=True, help='run folder to write')
    add_settings_arguments(parser, BCTrainSettings, aliases=FLAG_ALIASES,
                           choices={'obs_mode': OBS_MODES})
    add_policy_arguments(parser, 'DiffusionPolicyConfig fields (a resumed run keeps its own)')
    add_run_control_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``vrl train-bc`` from parsed arguments and print a one-line summary."""
    from visual_rl_stack.core.run_layout import SUMMARY
    from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import (
        train_bc)
    checkpoint = train_bc(settings_from_args(BCTrainSettings, args), args.out,
                          resume=args.resume, config_overrides=policy_overrides(args),
                          progress=not args.no_progress)
    summary = json.loads((Path(args.out) / SUMMARY).read_text())
    print(f'trained {args.task} ({args.obs_mode}) to step {summary["steps"]}: '
          f'final loss {summary["final_loss"]:.4f}, '
          f'{summary["samples_per_s"]:.0f} samples/s on {summary["device"]}, '
          f'checkpoint {checkpoint}')
    return 0
