"""``vrl distill``: distil a state-based teacher into an image-based diffusion student."""

import argparse
from pathlib import Path

from visual_rl_stack.cli.policy_flags import add_policy_arguments, policy_overrides
from visual_rl_stack.cli.settings_args import add_settings_arguments, settings_from_args
from visual_rl_stack.residual_policy.diffusion_bc.training.config import DistillSettings
from visual_rl_stack.residual_policy.diffusion_bc.training.distill import (
    distill, STUDENT_DEFAULTS)

#: Flag spellings of earlier releases, kept working.
FLAG_ALIASES = {'obs_mode': ('--obs',)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl distill`` arguments: the settings' fields, student settings, progress."""
    parser.add_argument('--out', type=Path, required=True, help='student run folder to write')
    add_settings_arguments(parser, DistillSettings, aliases=FLAG_ALIASES,
                           choices={'obs_mode': ('image', 'state+image')})
    student = ', '.join(f'{name} {" ".join(map(str, value)) if isinstance(value, list) else value}'
                        for name, value in STUDENT_DEFAULTS.items())
    add_policy_arguments(parser, "the student's DiffusionPolicyConfig fields (the student's "
                         f'own defaults: {student})')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bars')


def main(args: argparse.Namespace) -> int:
    """Run ``vrl distill`` and print a one-line summary."""
    report = distill(settings_from_args(DistillSettings, args), args.out,
                     policy_overrides(args), not args.no_progress)
    print(f'distilled {report["teacher"]} on {report["task"]}: teacher succeeded in '
          f'{report["teacher_success_while_recording"]:.0%} of its episodes, '
          f'{report["episodes_kept"]} kept; student ({report["student_obs"]}) in {args.out}')
    return 0
