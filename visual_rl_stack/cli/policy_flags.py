"""The diffusion policy's settings as flags, shared by the commands that train one."""

import argparse
from typing import Any

from visual_rl_stack.cli.overrides import add_deprecated_overrides
from visual_rl_stack.cli.settings_args import add_settings_arguments, given_overrides
from visual_rl_stack.residual_policy.diffusion_bc.model.config import (
    DATA_FIELDS, DiffusionPolicyConfig, FEATURE_SETS)


def add_policy_arguments(parser: argparse.ArgumentParser, description: str) -> None:
    """Add one flag per DiffusionPolicyConfig field the data does not decide, and ``--set``."""
    group = parser.add_argument_group('policy settings', description)
    add_settings_arguments(group, DiffusionPolicyConfig, skip=DATA_FIELDS, overrides=True,
                           choices={'state_features': FEATURE_SETS})
    add_deprecated_overrides(parser, '--set', 'overrides')


def policy_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Return the policy settings given on the command line (a flag wins over ``--set``)."""
    return {**dict(args.overrides), **given_overrides(DiffusionPolicyConfig, args, DATA_FIELDS)}
