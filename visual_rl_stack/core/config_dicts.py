"""
JSON round trip of the frozen config dataclasses saved beside checkpoints.

One definition so that every config refuses the same way: an unknown key (a
checkpoint from another version, a typo in ``--set``) is an error naming it,
and JSON lists come back as the tuples the dataclasses declare.
"""

from dataclasses import asdict, field, fields, MISSING
from typing import Any, Mapping, Type, TypeVar

Config = TypeVar('Config')


def config_from_dict(cls: Type[Config], data: Mapping) -> Config:
    """Build dataclass ``cls`` from a JSON dict; unknown keys are refused, lists become tuples."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f'unknown {cls.__name__} keys: {", ".join(unknown)}')
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def flatten_mapping(mapping: Mapping[str, Any], separator: str = '.',
                    prefix: str = '') -> dict[str, Any]:
    """Turn nested mappings into flat ``a.b`` names (ROS parameters, TensorBoard tags)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat.update(flatten_mapping(value, separator, f'{prefix}{key}{separator}'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def setting(default: Any = MISSING, help: str = '') -> Any:  # noqa: A002 (argparse's name)
    """Declare a settings field with its help text (the CLI flag is generated from both)."""
    return field(default=default, metadata={'help': help})


class JSONConfig:
    """Mixin for config dataclasses: the JSON round trip of :func:`config_from_dict`."""

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls: Type[Config], data: Mapping) -> Config:
        """Rebuild from :meth:`to_dict` output; unknown keys are refused."""
        return config_from_dict(cls, data)
