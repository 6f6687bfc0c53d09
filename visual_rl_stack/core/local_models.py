"""
What every transformers model of the stack shares: a local folder and a seeded ``generate``.

Models load from a folder written beforehand by ``save_pretrained`` (or a
download made elsewhere), never from the network: a missing folder is a
:class:`FileNotFoundError` that names it before transformers is even
imported. The first attempt decodes greedily; a retry samples, seeded by the
attempt number, so that asking again can give a different but reproducible
reply.
"""

from pathlib import Path
from typing import Any, Mapping, Union

import torch

PathLike = Union[str, Path]


def require_model_dir(path: PathLike, family: str, contents: str) -> Path:
    """Return ``path`` as a folder with a ``config.json``, or raise naming what it should hold."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f'{family} model folder {str(folder)!r} does not exist; it should '
                                f'hold {contents} (nothing is downloaded at run time)')
    if not (folder / 'config.json').is_file():
        raise FileNotFoundError(f'{family} model folder {str(folder)!r} has no config.json; it '
                                f'should hold {contents}')
    return folder


def seeded_generate(model: torch.nn.Module, inputs: Mapping[str, Any], attempt: int, seed: int,
                    max_new_tokens: int, retry_temperature: float) -> torch.Tensor:
    """Return ``model.generate`` tokens (on the CPU): greedy at attempt 0, sampled after."""
    sampling = ({'do_sample': True, 'temperature': retry_temperature} if attempt > 0
                else {'do_sample': False, 'temperature': None, 'top_p': None, 'top_k': None})
    device = next(model.parameters()).device
    devices = [device] if device.type == 'cuda' else []
    with torch.inference_mode(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed + attempt)
        tokens = model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
    return tokens.cpu()
