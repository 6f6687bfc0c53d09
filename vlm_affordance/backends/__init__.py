"""
The keypoint backends by name, each imported only when it is opened.

Importing this package loads neither torch nor transformers, so a command line
can list and check backend names before paying for a model. Molmo2 has no
backend: the installed transformers has no Molmo2 model class (only remote
code on the Hub), though :func:`..replies.parse_molmo_points` reads its replies.
"""

import importlib
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


def open_backend(name: str, path: Optional[str] = None, **options: Any) -> AffordanceBackend:
    """Return backend ``name`` loaded from the local model folder ``path`` (its default: None)."""
    if name not in BACKENDS:
        raise ValueError(f'unknown affordance backend {name!r}; known backends: '
                         f'{", ".join(sorted(BACKENDS))}')
    return BACKENDS[name](path, **options)
