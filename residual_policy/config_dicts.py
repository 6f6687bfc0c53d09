"""
JSON round trip of the frozen config dataclasses saved beside checkpoints.

One definition so that every config refuses the same way: an unknown key (a
checkpoint from another version, a typo in ``--set``) is an error naming it,
and JSON lists come back as the tuples the dataclasses declare.
"""

from dataclasses import fields
from typing import Mapping, Type, TypeVar

Config = TypeVar('Config')


def config_from_dict(cls: Type[Config], data: Mapping) -> Config:
    """Build dataclass ``cls`` from a JSON dict; unknown keys are refused, lists become tuples."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f'unknown {cls.__name__} keys: {", ".join(unknown)}')
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
