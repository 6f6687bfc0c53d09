"""
What every transformers backend shares: a local model folder, a device and ``generate``.

Folders and the greedy-then-sampled ``generate`` come from
:mod:`visual_rl_stack.core.local_models` (nothing is downloaded at run time).
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
from PIL import Image
import torch
from visual_rl_stack.core.devices import resolve_device
from visual_rl_stack.core.local_models import PathLike, require_model_dir, seeded_generate

from ..affordance import Affordance, Prompt, ReplyError


class TransformersBackend(ABC):
    """
    An :class:`AffordanceBackend` around a transformers model in a local folder.

    Subclasses say what the folder holds (:attr:`contents`), name the model
    class that loads it with an ``AutoProcessor`` (:attr:`model_class`; or
    override :meth:`_load`), build the model inputs for one view image
    (:meth:`_inputs`), decode the new tokens (:meth:`_decode`) and parse replies.
    """

    name = ''
    family = ''
    contents = ''
    #: transformers class of the model, e.g. ``PaliGemmaForConditionalGeneration``.
    model_class = ''

    def __init__(self, path: PathLike, view: str = 'front', device: str = 'cpu',
                 max_new_tokens: int = 128, dtype: Optional[torch.dtype] = None,
                 retry_temperature: float = 0.7, seed: int = 0) -> None:
        """Load the model in ``path`` onto ``device`` (``cpu``, ``cuda``, ``auto``)."""
        self.path = require_model_dir(path, self.family, self.contents)
        if max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
        self.view = view
        self.device = resolve_device(device)
        self.dtype = dtype or (torch.bfloat16 if self.device.type == 'cuda' else torch.float32)
        self.max_new_tokens = max_new_tokens
        self.retry_temperature = retry_temperature
        self.seed = seed
        self.model = self._load(self.path).to(self.device).eval()

    def _load(self, path: Path) -> torch.nn.Module:
        """Load the processor onto ``self`` and return the model (on the CPU)."""
        import transformers
        self.processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
        return getattr(transformers, self.model_class).from_pretrained(
            path, local_files_only=True, dtype=self.dtype)

    @abstractmethod
    def _inputs(self, prompt: Prompt, image: Image.Image) -> Mapping[str, Any]:
        """Return the model inputs (tensors) for ``prompt`` shown as ``image``."""

    @abstractmethod
    def _decode(self, tokens: torch.Tensor, inputs: Mapping[str, Any]) -> str:
        """Return the reply text in the ``generate`` output ``tokens`` (batch of one)."""

    @abstractmethod
    def parse(self, reply: str, prompt: Prompt) -> Affordance:
        """Return the affordance in ``reply``, or raise :class:`ReplyError` saying why not."""

    def image(self, prompt: Prompt) -> Image.Image:
        """Return the prompt's image of this backend's view (overlays drawn) as an RGB image."""
        if self.view not in prompt.images:
            raise ReplyError(f'{self.name} asks about view {self.view!r}; the prompt has '
                             f'{sorted(prompt.images)}')
        image = np.ascontiguousarray(prompt.images[self.view])
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'view {self.view!r} must be an HxWx3 uint8 image, '
                             f'got {image.dtype} {image.shape}')
        return Image.fromarray(image)

    def ask(self, prompt: Prompt, attempt: int) -> str:
        """Return the model's reply to ``prompt``: greedy at attempt 0, sampled on retries."""
        inputs = {key: value.to(self.device, self.dtype) if value.is_floating_point()
                  else value.to(self.device)
                  for key, value in self._inputs(prompt, self.image(prompt)).items()}
        tokens = seeded_generate(self.model, inputs, attempt, self.seed, self.max_new_tokens,
                                 self.retry_temperature)
        return self._decode(tokens, inputs)
