"""
PaliGemma: detects the instruction's object and destination, as ``<locNNNN>`` boxes.

PaliGemma's ``detect a ; b`` task answers ``<locY0><locX0><locY1><locX1> a``
segments joined by ``;``, on 1024 bins of the whole image (it is resized to a
square without keeping the aspect, so the bins map to the original view
directly). The box centres become the grasp and target points.
"""

from typing import Any, Mapping

from PIL import Image
import torch

from .base import TransformersBackend
from .phrases import detector_aliases
from ..affordance import Affordance, Prompt
from ..replies import parse_paligemma_boxes


class PaliGemmaBackend(TransformersBackend):
    """Keypoints from a PaliGemma checkpoint (``PaliGemmaForConditionalGeneration``)."""

    name = 'paligemma'
    family = 'PaliGemma'
    contents = ('config.json, the weights (model.safetensors), the tokenizer files and '
                'preprocessor_config.json')
    model_class = 'PaliGemmaForConditionalGeneration'

    def _inputs(self, prompt: Prompt, image: Image.Image) -> Mapping[str, Any]:
        """Return ``<image>detect object ; destination`` with the image (no training labels)."""
        phrases, _ = detector_aliases(prompt.instruction)
        text = f'{self.processor.image_token}detect {" ; ".join(phrases)}'
        inputs = self.processor(text=[text], images=[image], return_tensors='pt')
        return {key: value for key, value in inputs.items() if key != 'labels'}

    def _decode(self, tokens: torch.Tensor, inputs: Mapping[str, Any]) -> str:
        """Return the text of the tokens after the prompt, location tokens included."""
        new = tokens[0, inputs['input_ids'].shape[1]:]
        return self.processor.decode(new, skip_special_tokens=True)

    def parse(self, reply: str, prompt: Prompt) -> Affordance:
        """Return the centres of the boxes detected for the object and destination phrases."""
        _, aliases = detector_aliases(prompt.instruction)
        return parse_paligemma_boxes(reply, prompt, self.view, self.name, aliases)
