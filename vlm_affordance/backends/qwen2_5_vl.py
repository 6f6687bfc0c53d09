"""
Qwen2.5-VL: points named keypoints itself, answering JSON ``point_2d`` in resized pixels.

Qwen2.5-VL resizes every image to multiples of 28 pixels (``smart_resize``)
and points in pixels of that resized image; ``image_grid_thw`` (in 14-pixel
patches) gives the size, so the reply is rescaled from it to the original view.
The inputs are built from the tokenizer and the image processor rather than
``AutoProcessor``, whose Qwen2.5-VL processor also loads a video processor
that needs torchvision. It is asked for the grasp and target points only:
approach points hang in the air, where a pixel cannot say how high.
"""

from pathlib import Path
from typing import Any, Mapping

from PIL import Image
import torch

from .base import TransformersBackend
from ..affordance import Affordance, Prompt
from ..replies import parse_qwen_points, qwen_model_size, Size

#: Qwen2.5-VL's chat markup for one image and one text turn, as its chat template renders it.
CHAT = ('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
        '<|im_start|>user\n<|vision_start|>{image}<|vision_end|>{text}<|im_end|>\n'
        '<|im_start|>assistant\n')
QUESTION = ('The robot must: {instruction}. Point to where the gripper should grasp, labelled '
            '"grasp", and to where the grasped object must go, labelled "target". Answer with '
            'JSON only: [{{"point_2d": [x, y], "label": "grasp"}}, '
            '{{"point_2d": [x, y], "label": "target"}}]')


class Qwen25VLBackend(TransformersBackend):
    """Keypoints from a Qwen2.5-VL checkpoint (``Qwen2_5_VLForConditionalGeneration``)."""

    name = 'qwen2_5_vl'
    family = 'Qwen2.5-VL'
    contents = ('config.json, the weights (model.safetensors), tokenizer.json and '
                'preprocessor_config.json')
    image_token = '<|image_pad|>'

    def _load(self, path: Path) -> torch.nn.Module:
        """Load the tokenizer, the image processor and the model."""
        from transformers import (AutoImageProcessor, AutoTokenizer,
                                  Qwen2_5_VLForConditionalGeneration)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        self.model_sizes: dict[tuple[int, int], Size] = {}
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(
            path, local_files_only=True, dtype=self.dtype)

    def _vision(self, image: Image.Image) -> Mapping[str, Any]:
        """Return the image processor's output and remember the resized size for the image."""
        vision = self.image_processor(images=[image], return_tensors='pt')
        self.model_sizes[image.size] = qwen_model_size(vision['image_grid_thw'][0].tolist(),
                                                       self.image_processor.patch_size)
        return vision

    def model_size(self, image: Image.Image) -> Size:
        """Return ``(width, height)`` of ``image`` as Qwen2.5-VL resizes it."""
        if image.size not in self.model_sizes:
            self._vision(image)
        return self.model_sizes[image.size]

    def _inputs(self, prompt: Prompt, image: Image.Image) -> Mapping[str, Any]:
        """Return token ids with one image token per merged patch, pixels and the mrope types."""
        vision = self._vision(image)
        count = int(vision['image_grid_thw'][0].prod()) // self.image_processor.merge_size ** 2
        text = CHAT.format(image=self.image_token * count,
                           text=QUESTION.format(instruction=prompt.instruction.rstrip(' .')))
        tokens = self.tokenizer([text], return_tensors='pt')
        image_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        mm_types = (tokens['input_ids'] == image_id).long()
        return {**tokens, **vision, 'mm_token_type_ids': mm_types}

    def _decode(self, tokens: torch.Tensor, inputs: Mapping[str, Any]) -> str:
        """Return the text of the tokens after the prompt."""
        new = tokens[0, inputs['input_ids'].shape[1]:]
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def parse(self, reply: str, prompt: Prompt) -> Affordance:
        """Return the keypoints of a ``point_2d`` reply, rescaled from the resized image."""
        size = self.model_size(self.image(prompt))
        return parse_qwen_points(reply, prompt, self.view, size, backend=self.name)
