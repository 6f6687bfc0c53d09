"""
The keypoint backends by name, each imported only when it is opened.

Importing this package loads neither torch nor transformers, so a command line
can list and check backend names before paying for a model. Molmo2 has no
backend: the installed transformers has no Molmo2 model class (only remote
code on the Hub), though :func:`..replies.parse_molmo_points` reads its replies.
"""

import importlib
from pathlib import Path
from typing import Any, Callable, Optional

from ..affordance import AffordanceBackend

Factory = Callable[..., AffordanceBackend]


def _lazy(module: str, attribute: str) -> Factory:
    """Return a factory that imports ``module`` (relative to this package) when first called."""
    def factory(*args: Any, **kwargs: Any) -> AffordanceBackend:
        """Open the backend; arguments as its class takes them (path, view, device, ...)."""
        backend = getattr(importlib.import_module(module, __name__), attribute)
        return backend(*args, **kwargs)
    return factory


#: Backend name -> factory taking ``(path, view='front', device='cpu', max_new_tokens=128, ...)``
#: (``keypoint_net``: ``(path=None, views=None, device='cpu', refine=True)``, None the shipped
#: model).
BACKENDS: dict[str, Factory] = {
    'florence2': _lazy('.florence2', 'Florence2Backend'),
    'keypoint_net': _lazy('.keypoint_net', 'KeypointNetBackend'),
    'paligemma': _lazy('.paligemma', 'PaliGemmaBackend'),
    'qwen2_5_vl': _lazy('.qwen2_5_vl', 'Qwen25VLBackend'),
}


#: Backends with no default model: they need a local folder (nothing is downloaded at run time).
NEED_MODEL_FOLDER = ('florence2', 'paligemma', 'qwen2_5_vl')


def backend_problem(name: str, path: Optional[str] = None, check_folder: bool = True) -> str:
    """Return why backend ``name`` cannot open from ``path`` (checked without loading), or ''."""
    if name not in BACKENDS:
        return (f'unknown affordance backend {name!r}; known backends: '
                f'{", ".join(sorted(BACKENDS))}')
    if name in NEED_MODEL_FOLDER and not path:
        return (f'affordance backend {name!r} needs a local model folder (--model DIR, or the '
                'node parameter model_path): no weights are downloaded at run time')
    if check_folder and name in NEED_MODEL_FOLDER and not Path(path).is_dir():
        return f'affordance backend {name!r}: model folder {path} does not exist'
    return ''


def open_backend(name: str, path: Optional[str] = None, **options: Any) -> AffordanceBackend:
    """
    Return backend ``name`` loaded from the local model folder ``path`` (its default: None).

    A missing folder is the backend's own FileNotFoundError (it says what the folder lacks).
    """
    problem = backend_problem(name, path, check_folder=False)
    if problem:
        raise ValueError(problem)
    return BACKENDS[name](path, **options)


def backend_opener(name: str, path: Optional[str] = None,
                   **options: Any) -> Callable[[], AffordanceBackend]:
    """
    Return a function that opens backend ``name`` later (a model loads slowly, off the caller).

    What can be checked without loading (the name, a needed model folder)
    raises ValueError now, so a command or node fails at start-up instead
    of running on with the sparse reward alone.
    """
    problem = backend_problem(name, path)
    if problem:
        raise ValueError(problem)
    return lambda: open_backend(name, path, **options)
