"""``--set name=value`` overrides shared by the training commands."""

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
