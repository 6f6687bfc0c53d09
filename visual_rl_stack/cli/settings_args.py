"""
Command-line flags generated from a settings dataclass, so names and defaults cannot drift.

Each field ``name`` becomes ``--name`` (underscores as dashes) with the field's
type, default and help (:func:`visual_rl_stack.core.config_dicts.setting`); a
field without a default is a required flag. Older flag spellings stay as aliases.
"""

import argparse
from dataclasses import fields, MISSING
import typing
from typing import Any, Mapping, Optional, Sequence, Type, TypeVar

Settings = TypeVar('Settings')


def flag_name(field_name: str) -> str:
    """Return the flag of a settings field: ``base_noise_scale`` -> ``--base-noise-scale``."""
    return '--' + field_name.replace('_', '-')


def _value_type(annotation: Any) -> tuple[type, Optional[str]]:
    """Return ``(scalar type, nargs)`` of ``int``, ``Optional[int]``, ``tuple[str, ...]``..."""
    if typing.get_origin(annotation) is typing.Union:
        annotation = [a for a in typing.get_args(annotation) if a is not type(None)][0]
    nargs = None
    if typing.get_origin(annotation) is tuple:
        annotation, nargs = typing.get_args(annotation)[0], '+'
    if annotation not in (int, float, str, bool):
        raise TypeError(f'no command-line type for {annotation!r}')
    return annotation, nargs


def add_settings_arguments(parser: argparse.ArgumentParser, settings_cls: Type[Any],
                           aliases: Optional[Mapping[str, Sequence[str]]] = None,
                           choices: Optional[Mapping[str, Sequence[Any]]] = None) -> None:
    """Add one flag per field of dataclass ``settings_cls`` to ``parser``."""
    hints = typing.get_type_hints(settings_cls)
    for spec in fields(settings_cls):
        value_type, nargs = _value_type(hints[spec.name])
        names = [flag_name(spec.name), *(aliases or {}).get(spec.name, ())]
        kwargs: dict[str, Any] = {'dest': spec.name, 'help': spec.metadata.get('help', '')}
        if spec.default is MISSING:
            kwargs['required'] = True
        else:
            kwargs['default'] = spec.default
        if value_type is bool:
            kwargs['action'] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=value_type, nargs=nargs)
        if choices and spec.name in choices:
            kwargs['choices'] = sorted(choices[spec.name])
        parser.add_argument(*names, **kwargs)


def settings_from_args(settings_cls: Type[Settings], args: argparse.Namespace) -> Settings:
    """Build ``settings_cls`` from the parsed flags of :func:`add_settings_arguments`."""
    values = {spec.name: getattr(args, spec.name) for spec in fields(settings_cls)}
    return settings_cls(**{name: tuple(value) if isinstance(value, list) else value
                           for name, value in values.items()})


def add_run_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--resume`` and ``--no-progress`` flags every training command takes."""
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in --out from its training state')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
