"""
``KEY=VALUE`` overrides: the older spelling of the flags generated from model configs.

``vrl train-bc --set``, ``vrl train-residual --residual`` and ``--ppo`` take one
field per use with a JSON value; they still work, hidden from ``--help``, and
the generated flag wins where both name a field.
"""

import argparse
import json


def parse_override(text: str) -> tuple[str, object]:
    """Parse ``key=value`` with a JSON value (a bare word is taken as a string)."""
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'expected key=value, got {text!r}')
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_deprecated_overrides(parser: argparse.ArgumentParser, flag: str, dest: str) -> None:
    """Add the repeatable, hidden ``flag KEY=VALUE`` collecting ``(key, value)`` in ``dest``."""
    parser.add_argument(flag, dest=dest, type=parse_override, action='append', default=[],
                        metavar='KEY=VALUE', help=argparse.SUPPRESS)
