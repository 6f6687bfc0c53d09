"""
The ``--reward`` flag of every command that takes a reward, from the one reward registry.

Its choices and help are :func:`visual_rl_stack.core.rewards.reward_names` and
the rewards' descriptions, so a reward registered once shows up everywhere;
an earlier name is accepted with a deprecation warning and read as today's.
"""

import argparse
from dataclasses import fields
from typing import Any, Optional

from visual_rl_stack.core.rewards import canonical_reward, reward_help, reward_names


def add_reward_argument(parser: Any, default: str, trait: Optional[str] = None,
                        what: str = 'reward function') -> argparse.Action:
    """Add ``--reward`` choosing among the registered rewards (those offering ``trait``)."""
    names = reward_names(trait)
    return parser.add_argument('--reward', type=canonical_reward, choices=names,
                               default=default,
                               help=f'{what} (default: {default}); {reward_help(names)}')


def add_reward_setting(parser: Any, settings_cls: type, trait: Optional[str] = None
                       ) -> argparse.Action:
    """Add ``--reward`` for the ``reward`` field of a settings dataclass: its default and help."""
    spec = next(spec for spec in fields(settings_cls) if spec.name == 'reward')
    return add_reward_argument(parser, spec.default, trait, spec.metadata['help'])
