"""
``vrl train-bc``: behaviour-clone a diffusion policy from a folder of expert bags.

Example::

    vrl train-bc --task lift --data data/lift --obs state --out runs/bc --steps 20000
    vrl train-bc --task lift --data data/lift --obs state --out runs/bc --steps 30000 --resume

Policy settings other than those the data decides are given as
``--set key=value`` (value parsed as JSON, e.g. ``--set down_dims=[16,32,64]``).
The run folder layout is :mod:`visual_rl_stack.core.run_layout`.
"""

import argparse
import json
from pathlib import Path

from visual_rl_stack.cli.overrides import parse_override
from visual_rl_stack.cli.settings_args import (add_run_control_arguments, add_settings_arguments,
                                               settings_from_args)
from visual_rl_stack.residual_policy.diffusion_bc.model.obs_modes import OBS_MODES
from visual_rl_stack.residual_policy.diffusion_bc.model.state_features import FEATURE_SETS
from visual_rl_stack.residual_policy.diffusion_bc.training.config import BCTrainSettings

#: Flag spellings of earlier releases, kept working.
FLAG_ALIASES = {'obs_mode': ('--obs',)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-bc`` arguments: the settings' fields, policy overrides, run control."""
    parser.add_argument('--out', type=Path, required=True, help='run folder to write')
    add_settings_arguments(parser, BCTrainSettings, aliases=FLAG_ALIASES,
                           choices={'obs_mode': OBS_MODES})
    parser.add_argument('--state-features', choices=FEATURE_SETS, default=None,
                        help='state features the policy derives from the raw state: raw; '
                        'relative (adds object-minus-gripper positions and headings modulo '
                        '90 degrees); invariant (only the relative part, heights and gripper '
                        'opening); frames (relative plus positions in the planar frames '
                        'facing from one object to another); default raw (a resumed run '
                        'keeps its own)')
    parser.add_argument('--action-frame', nargs=2, default=None, metavar=('FROM', 'TO'),
                        help='learn delta actions in the table-plane frame facing from '
                        'state position field FROM to TO (push: block_position '
                        'goal_position); default world coordinates (a resumed run keeps '
                        'its own)')
    parser.add_argument('--set', dest='overrides', type=parse_override, action='append',
                        default=[], metavar='KEY=VALUE',
                        help='override a DiffusionPolicyConfig field (JSON value)')
    add_run_control_arguments(parser)


def main(args: argparse.Namespace) -> int:
    """Run ``vrl train-bc`` from parsed arguments and print a one-line summary."""
    from visual_rl_stack.core.run_layout import SUMMARY
    from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import (
        train_bc)
    overrides = dict(args.overrides)
    if args.state_features is not None:
        overrides['state_features'] = args.state_features
    if args.action_frame is not None:
        overrides['action_frame'] = tuple(args.action_frame)
    checkpoint = train_bc(settings_from_args(BCTrainSettings, args), args.out,
                          resume=args.resume, config_overrides=overrides,
                          progress=not args.no_progress)
    summary = json.loads((Path(args.out) / SUMMARY).read_text())
    print(f'trained {args.task} ({args.obs_mode}) to step {summary["steps"]}: '
          f'final loss {summary["final_loss"]:.4f}, '
          f'{summary["samples_per_s"]:.0f} samples/s on {summary["device"]}, '
          f'checkpoint {checkpoint}')
    return 0
