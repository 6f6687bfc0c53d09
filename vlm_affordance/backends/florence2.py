"""
Florence-2: grounds the instruction's object and destination phrases in boxes.

Florence-2 answers tasks, not instructions: ``<CAPTION_TO_PHRASE_GROUNDING>``
with the caption ``'red cube. blue target'`` returns each phrase followed by
``<loc_N>`` box corners in 1000 bins of the image. The processor's
``post_process_generation`` turns those into pixels of the size it is given,
here the ORIGINAL view, and the box centres become the grasp and target points.
"""

from typing import Any, Mapping

from PIL import Image
import torch

from .base import TransformersBackend
from .phrases import detector_aliases
from ..affordance import Affordance, Prompt
from ..replies import parse_florence_result

TASK = '<CAPTION_TO_PHRASE_GROUNDING>'


class Florence2Backend(TransformersBackend):
    """Keypoints from a Florence-2 checkpoint (``Florence2ForConditionalGeneration``)."""

    name = 'florence2'
    family = 'Florence-2'
    contents = ('config.json, the weights (model.safetensors), the tokenizer files and '
                'processor_config.json (transformers-native Florence-2, not remote code)')
    model_class = 'Florence2ForConditionalGeneration'

    def _inputs(self, prompt: Prompt, image: Image.Image) -> Mapping[str, Any]:
        """Return the grounding task for the instruction's phrases with the image."""
        phrases, _ = detector_aliases(prompt.instruction)
        return self.processor(text=[TASK + '. '.join(phrases)], images=[image],
                              return_tensors='pt')

    def _decode(self, tokens: torch.Tensor, inputs: Mapping[str, Any]) -> str:
        """Return the decoder's text with its location tokens (the reply is all new tokens)."""
        return self.processor.batch_decode(tokens, skip_special_tokens=False)[0]

    def parse(self, reply: str, prompt: Prompt) -> Affordance:
        """Return the centres of the boxes grounded for the object and destination phrases."""
        _, aliases = detector_aliases(prompt.instruction)
        result = self.processor.post_process_generation(reply, task=TASK,
                                                        image_size=prompt.size_of(self.view))
        return parse_florence_result(result[TASK], prompt, self.view, reply, self.name, aliases)
