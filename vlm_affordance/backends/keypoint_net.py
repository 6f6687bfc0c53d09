"""
The default affordance backend: the keypoint network shipped in ``models/affordance_keypoints``.

It reads each view's RGB-D from :attr:`Prompt.frames` (the overlays are for
VLMs), predicts the grasp and target heatmaps of every view, keeps each
keypoint's most confident view, moves it onto the centre of the top face it
points at (:func:`..keypoint_model.refine.top_face_centre`, depth only; a
target only when its pixel is on a top face) and answers MOKA JSON in pixels
of the prompt image shown for that view::

    {"grasp": {"view": "front", "point": [x, y], "confidence": 0.93},
     "target": {"view": "side", "point": [x, y], "confidence": 0.88, "height": 0.1}}

which :meth:`parse` reads with :func:`..replies.parse_moka_json`, so the query
loop's validation, retries and log apply as to any model. A retry (attempt
``n``) answers from each keypoint's ``n``-th most confident view.
"""

import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from visual_rl_stack.core.checkpoints import load_checkpoint
from visual_rl_stack.core.run_layout import CHECKPOINT
from visual_rl_stack.core.shipped_models import shipped_models

from ..affordance import Affordance, Prompt, ReplyError
from ..keypoint_model.language import encode, load_tokenizer
from ..keypoint_model.model import (build_model, HEATMAP_KEYPOINTS, network_input, peaks,
                                    view_arrays)
from ..keypoint_model.refine import top_face_centre
from ..replies import parse_moka_json, to_model_pixels, to_original_pixels

#: The shipped model the backend loads when given no path.
DEFAULT_MODEL = 'affordance_keypoints'
CHECKPOINT_KIND = 'affordance_keypoints'
#: Target heights below this (m) are the network's noise around 0, not a point in the air.
MIN_HEIGHT = 0.02


def resolve_model(path: Union[str, Path, None] = None) -> Path:
    """
    Return the checkpoint folder of ``path``: a checkpoint, a run, a shipped model's name.

    None or '' is the shipped :data:`DEFAULT_MODEL` (found in the source tree or
    the installed share directory, see :func:`..shipped_models.models_dir`).
    """
    name = str(path or DEFAULT_MODEL)
    candidate = Path(name).expanduser()
    if not candidate.exists():
        models = shipped_models()
        if name not in models:
            raise FileNotFoundError(f'keypoint model {name!r} is neither a folder nor a shipped '
                                    f'model ({", ".join(sorted(models)) or "none installed"})')
        candidate = models[name].path
    if (candidate / CHECKPOINT).is_dir():
        candidate = candidate / CHECKPOINT
    return candidate


class KeypointNetBackend:
    """An :class:`AffordanceBackend` around the keypoint network (see the module docstring)."""

    name = 'keypoint_net'
    #: It points at the top face itself; a candidate (a region's centre) is less precise.
    snapped_keypoints: tuple[str, ...] = ()

    def __init__(self, path: Union[str, Path, None] = None, views: Optional[Sequence[str]] = None,
                 device: str = 'cpu', refine: bool = True, threads: Optional[int] = None) -> None:
        """
        Load the network in ``path`` (default: the shipped model) for ``views`` (all).

        ``threads`` sets torch's intra-op threads (None: the caller's setting).
        """
        self.path = resolve_model(path)
        self.views = None if views is None else tuple(views)
        self.refine = refine
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = load_checkpoint(self.path, build_model, CHECKPOINT_KIND,
                                     self.device).eval()
        self.tokenizer = load_tokenizer(self.path)
        self.size = self.model.config.image_size

    def predict(self, prompt: Prompt) -> dict[str, list[dict]]:
        """Return per keypoint the views' predictions (original pixels), most confident first."""
        views = [v for v in prompt.images if v in prompt.frames
                 and (self.views is None or v in self.views)]
        if not views:
            raise ReplyError(f'{self.name} reads RGB-D: the prompt carries no camera frames '
                             f'of its views {sorted(prompt.images)} (build it with build_prompt)')
        arrays = [view_arrays(prompt.frames[v], self.size) for v in views]
        rgb = torch.from_numpy(np.stack([a[0] for a in arrays]))
        xyz = torch.from_numpy(np.stack([a[1] for a in arrays]))
        tokens = torch.tensor([encode(self.tokenizer, prompt.instruction,
                                      self.model.config.max_tokens)] * len(views))
        with torch.inference_mode():
            logits, heights = self.model(network_input(rgb, xyz).to(self.device),
                                         tokens.to(self.device))
            points, confidence = peaks(logits.cpu(), self.model.config.window)
        found: dict[str, list[dict]] = {}
        for k, name in enumerate(HEATMAP_KEYPOINTS):
            rows = []
            for i, view in enumerate(views):
                frame = prompt.frames[view]
                u, v = to_original_pixels(float(points[i, k, 0]), float(points[i, k, 1]),
                                          (self.size, self.size), (frame.width, frame.height))
                rows.append({'view': view, 'u': u, 'v': v,
                             'confidence': float(confidence[i, k]),
                             'height': float(heights[i, k])})
            found[name] = sorted(rows, key=lambda row: -row['confidence'])
        return found

    def ask(self, prompt: Prompt, attempt: int) -> str:
        """Return the MOKA JSON reply; attempt ``n`` answers from the ``n``-th best views."""
        reply = {}
        for name, rows in self.predict(prompt).items():
            row = rows[attempt % len(rows)]
            frame = prompt.frames[row['view']]
            u, v = row['u'], row['v']
            if self.refine:
                centre = top_face_centre(frame, u, v, require_on_top=name != 'grasp')
                u, v = centre if centre is not None else (u, v)
            shown = prompt.images[row['view']].shape[1::-1]
            x, y = to_model_pixels(u, v, (frame.width, frame.height), tuple(shown))
            entry = {'view': row['view'], 'point': [round(x, 2), round(y, 2)],
                     'confidence': round(row['confidence'], 3)}
            if name == 'target' and row['height'] >= MIN_HEIGHT:
                entry['height'] = round(row['height'], 3)
            reply[name] = entry
        return json.dumps(reply)

    def parse(self, reply: str, prompt: Prompt) -> Affordance:
        """Return the affordance in a reply of :meth:`ask` (MOKA JSON)."""
        return parse_moka_json(reply, prompt, backend=self.name)
