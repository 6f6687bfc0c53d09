"""
Checkpoints as folders: ``model.safetensors``, ``config.json``, ``normalization.json``.

Weights alone cannot be trusted: a checkpoint is only loaded into a model built
from its own config, and every key and shape must match, so a stale or foreign
checkpoint fails loudly with the reason instead of silently mis-loading. The
folder is written to a temporary sibling and renamed into place, so readers
never see a half-written checkpoint.
"""

import json
import os
from pathlib import Path
import shutil
import tempfile
from typing import Callable, Optional, Union

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch
from torch import nn

#: Bump when the folder layout or config.json envelope changes meaning.
FORMAT_VERSION = 1
WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
NORMALIZATION_FILE = 'normalization.json'
REQUIRED_FILES = (WEIGHTS_FILE, CONFIG_FILE, NORMALIZATION_FILE)

PathLike = Union[str, os.PathLike]
BuildFn = Callable[[dict, dict], nn.Module]


def save_checkpoint(path: PathLike, model: nn.Module, config: dict, normalization: dict,
                    kind: str) -> Path:
    """Write ``model``'s weights with the config that rebuilds it; replace ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', dir=path.parent))
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(staging / WEIGHTS_FILE), metadata={'kind': kind})
        envelope = {'format_version': FORMAT_VERSION, 'kind': kind, 'config': config}
        _write_json(staging / CONFIG_FILE, envelope)
        _write_json(staging / NORMALIZATION_FILE, normalization)
        _replace_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def atomic_torch_save(state: dict, path: PathLike) -> None:
    """Write a training state with ``torch.save`` so that a reader sees the old or the new file."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.tmp')
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_training_state(path: PathLike) -> dict:
    """Load a state written by :func:`atomic_torch_save` (tensors and plain values only)."""
    return torch.load(path, map_location='cpu', weights_only=True)


def read_checkpoint_config(path: PathLike, kind: Optional[str] = None) -> tuple[dict, dict]:
    """Return ``(config, normalization)`` of a checkpoint after checking its files and version."""
    path = Path(path)
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ValueError(f'checkpoint {path} is missing {", ".join(missing)}')
    envelope = json.loads((path / CONFIG_FILE).read_text())
    version = envelope.get('format_version')
    if version != FORMAT_VERSION:
        raise ValueError(f'checkpoint {path} has format version {version}; '
                         f'this code reads version {FORMAT_VERSION}')
    if kind is not None and envelope.get('kind') != kind:
        raise ValueError(f'checkpoint {path} holds a {envelope.get("kind")!r} model, '
                         f'not a {kind!r} model')
    return envelope['config'], json.loads((path / NORMALIZATION_FILE).read_text())


def load_checkpoint(path: PathLike, build_fn: BuildFn, kind: Optional[str] = None,
                    device: Union[str, torch.device] = 'cpu') -> nn.Module:
    """
    Build a model with ``build_fn(config, normalization)`` and load the saved weights into it.

    Raises ValueError naming the problem when a file is missing, the format
    version or kind differs, or the weights' keys or shapes do not match the
    model the config describes.
    """
    config, normalization = read_checkpoint_config(path, kind)
    model = build_fn(config, normalization)
    tensors = read_weights(path)
    _check_state_matches(model.state_dict(), tensors, Path(path))
    model.load_state_dict(tensors, strict=True)
    return model.to(device)


def read_weights(path: PathLike) -> dict[str, torch.Tensor]:
    """
    Return the tensors of a checkpoint folder's weights file.

    A truncated or corrupt file (an interrupted copy or download) raises
    ValueError naming the file, instead of safetensors' own error.
    """
    weights = Path(path) / WEIGHTS_FILE
    try:
        return load_file(str(weights))
    except SafetensorError as error:
        raise ValueError(f'{weights} is not a readable safetensors file ({error}): it is '
                         'truncated or corrupt; copy the model again or retrain it') from None


def same_checkpoint(first: PathLike, second: PathLike) -> bool:
    """Return whether two checkpoint folders hold the same model: config, statistics, weights."""
    if read_checkpoint_config(first) != read_checkpoint_config(second):
        return False
    a, b = (read_weights(path) for path in (first, second))
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _check_state_matches(expected: dict, found: dict, path: Path) -> None:
    """Raise ValueError listing missing, unexpected and mis-shaped tensors."""
    problems = []
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        problems.append(f'missing keys {_preview(missing)}')
    if unexpected:
        problems.append(f'unexpected keys {_preview(unexpected)}')
    mismatched = [f'shape mismatch for {key}: checkpoint {tuple(found[key].shape)}, '
                  f'config expects {tuple(expected[key].shape)}'
                  for key in sorted(set(expected) & set(found))
                  if expected[key].shape != found[key].shape]
    if mismatched:
        problems.append(_preview(mismatched, limit=3, separator='; '))
    if problems:
        raise ValueError(f'checkpoint {path} does not match its config: ' + '; '.join(problems))


def _preview(items: list[str], limit: int = 5, separator: str = ', ') -> str:
    """Show the first few items and how many more there are."""
    more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
    return separator.join(items[:limit]) + more


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented, key-sorted JSON."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')


def _replace_folder(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an existing ``target`` is swapped out, then removed."""
    if not target.exists():
        os.replace(staging, target)
        return
    if not target.is_dir():
        raise ValueError(f'cannot write a checkpoint folder over the file {target}')
    retired = Path(tempfile.mkdtemp(prefix=f'.{target.name}.old.', dir=target.parent))
    os.replace(target, retired / target.name)
    os.replace(staging, target)
    shutil.rmtree(retired)
