"""
Command-line flags generated from a settings dataclass, so names and defaults cannot drift.

Each field ``name`` becomes ``--name`` (underscores as dashes) with the field's
type, default and help (:func:`visual_rl_stack.core.config_dicts.setting`); a
field without a default is a required flag. Older flag spellings stay as aliases.
Model configs (the policy's, the residual's, PPO's) become flags the same way
but as overrides: a flag not given is absent, so a new run takes the field's
default and a resumed run keeps its own (:func:`given_overrides`).
"""

import argparse
from dataclasses import fields, MISSING
import typing
from typing import Any, Mapping, Optional, Sequence, Type, TypeVar

Settings = TypeVar('Settings')


def flag_name(field_name: str) -> str:
    """Return the flag of a settings field: ``base_noise_scale`` -> ``--base-noise-scale``."""
    return '--' + field_name.replace('_', '-')


def _value_type(annotation: Any) -> tuple[type, Any, bool]:
    """Return ``(scalar type, nargs, optional)`` of e.g. ``Optional[int]``, ``tuple[str, ...]``."""
    optional = typing.get_origin(annotation) is typing.Union
    if optional:
        annotation = [a for a in typing.get_args(annotation) if a is not type(None)][0]
    nargs = None
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        annotation, nargs = args[0], ('...' if args[-1] is Ellipsis else len(args))
    if annotation not in (int, float, str, bool):
        raise TypeError(f'no command-line type for {annotation!r}')
    return annotation, nargs, optional


def _or_none(value_type: type) -> Any:
    """Return a parser of ``value_type`` that reads ``none`` as None (an Optional field)."""
    def parse(text: str) -> Any:
        return None if text.lower() == 'none' else value_type(text)
    parse.__name__ = value_type.__name__
    return parse


def _shown(value: Any) -> str:
    """Return a default as a user types it: tuples space-separated, None as ``none``."""
    if isinstance(value, tuple):
        return ' '.join(str(v) for v in value) or '(empty)'
    return 'none' if value is None else str(value)


def add_settings_arguments(parser: Any, settings_cls: Type[Any],
                           aliases: Optional[Mapping[str, Sequence[str]]] = None,
                           choices: Optional[Mapping[str, Sequence[Any]]] = None,
                           skip: Sequence[str] = (), overrides: bool = False) -> None:
    """
    Add one flag per field of dataclass ``settings_cls`` (except ``skip``) to ``parser``.

    Every flag's help names the field's default; with ``overrides`` the flags
    have none themselves (absent unless given). ``parser`` may be an argument group.
    """
    hints = typing.get_type_hints(settings_cls)
    for spec in fields(settings_cls):
        if spec.name in skip:
            continue
        value_type, nargs, optional = _value_type(hints[spec.name])
        names = [flag_name(spec.name), *(aliases or {}).get(spec.name, ())]
        kwargs: dict[str, Any] = {'dest': spec.name, 'help': spec.metadata.get('help', '')}
        if overrides:
            kwargs['default'] = argparse.SUPPRESS
            kwargs['help'] += f' (default {_shown(spec.default)})'
        elif spec.default is MISSING:
            kwargs['required'] = True
        else:
            kwargs['default'] = spec.default
            kwargs['help'] += f' (default {_shown(spec.default)})'
        if value_type is bool:
            kwargs['action'] = argparse.BooleanOptionalAction
        else:
            parse = _or_none(value_type) if optional and overrides else value_type
            if nargs == '...':  # an override may empty a tuple, a setting needs one value
                nargs = '*' if overrides else '+'
            kwargs.update(type=parse, nargs=nargs)
        if choices and spec.name in choices:
            kwargs['choices'] = sorted(choices[spec.name])
        parser.add_argument(*names, **kwargs)


def given_overrides(config_cls: Type[Any], args: argparse.Namespace,
                    skip: Sequence[str] = ()) -> dict[str, Any]:
    """Return the fields of ``config_cls`` (except ``skip``) given as override flags."""
    return {spec.name: tuple(value) if isinstance(value, list) else value
            for spec in fields(config_cls) if spec.name not in skip
            and (value := getattr(args, spec.name, MISSING)) is not MISSING}


def settings_from_args(settings_cls: Type[Settings], args: argparse.Namespace) -> Settings:
    """Build ``settings_cls`` from the parsed flags of :func:`add_settings_arguments`."""
    values = {spec.name: getattr(args, spec.name) for spec in fields(settings_cls)}
    return settings_cls(**{name: tuple(value) if isinstance(value, list) else value
                           for name, value in values.items()})


def add_run_control_arguments(parser: argparse.ArgumentParser, resume: bool = True) -> None:
    """Add ``--no-progress`` and, where the trainer can resume a run, ``--resume``."""
    if resume:
        parser.add_argument('--resume', action='store_true',
                            help='continue the run in --out from its training state')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
