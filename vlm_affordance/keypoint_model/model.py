"""
The keypoint network: RGB-D views and an instruction in, one heatmap per keypoint out.

Each view is fed on its own as six channels at ``image_size`` square: RGB and
the world point of every pixel (x, y, z from the metric depth, intrinsics and
camera pose, normalised to the workspace), so the network sees geometry the
same way whatever the camera jitter. The instruction's tokens go through a
learned word embedding and a bidirectional GRU; the sentence vector
modulates the convolutional features with FiLM (per-channel scale and shift)
at every scale, and each keypoint's own phrase (a learned query's attention
over the tokens) is matched against every pixel's features (a dot product
added to the heatmap), so the colour word of the object to move lights up
that object. A small U-Net head gives a ``K x S x S`` heatmap (``S`` =
``image_size / 4``); a keypoint's pixel is the soft-argmax in a window around
the heatmap's peak (sub-pixel), its confidence the probability mass in that
window, and a linear head on the sentence gives each keypoint's ``height``
(how far above the surface seen at that pixel the point lies).
"""

from dataclasses import asdict, dataclass
import math
from typing import Optional

import cv2
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from visual_rl_stack.sim.cameras import CameraFrame

from ..lifting import TABLE_TOP_Z, world_points

#: Keypoints the network predicts, in heatmap channel order.
HEATMAP_KEYPOINTS = ('grasp', 'target')
#: World-point normalisation: centre and scale of x, y and of z above the table.
XYZ_CENTRE = (0.55, 0.0, TABLE_TOP_Z)
XYZ_SCALE = (0.15, 0.2, 0.05)
XYZ_CLIP = 4.0
STRIDE = 4


@dataclass(frozen=True)
class KeypointNetConfig:
    """Sizes of the network (saved in the checkpoint's config.json)."""

    vocab_size: int
    image_size: int = 128
    max_tokens: int = 24
    embed_dim: int = 32
    text_dim: int = 64
    channels: tuple[int, int, int] = (32, 48, 64)
    window: int = 2
    phrase_match: bool = True

    @classmethod
    def from_dict(cls, values: dict) -> 'KeypointNetConfig':
        """Build a config from its JSON form (lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def to_dict(self) -> dict:
        """Return the JSON form."""
        return asdict(self)


def view_arrays(frame: CameraFrame, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return one view's ``3xSxS`` uint8 RGB and ``3xSxS`` float16 normalised world points."""
    rgb, xyz = frame.rgb, world_points(frame)
    xyz = (xyz - np.asarray(XYZ_CENTRE)) / np.asarray(XYZ_SCALE)
    xyz = np.clip(np.nan_to_num(xyz, nan=XYZ_CLIP), -XYZ_CLIP, XYZ_CLIP).astype(np.float32)
    if rgb.shape[:2] != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
        xyz = cv2.resize(xyz, (size, size), interpolation=cv2.INTER_NEAREST)
    return (np.ascontiguousarray(rgb.transpose(2, 0, 1)),
            xyz.transpose(2, 0, 1).astype(np.float16))


def network_input(rgb: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """Return the float ``Bx6xSxS`` input of uint8 RGB and float16 world points."""
    return torch.cat([rgb.float() / 127.5 - 1.0, xyz.float()], dim=1)


class FiLMBlock(nn.Module):
    """A 3x3 convolution, group norm, then a text-conditioned scale and shift, then ReLU."""

    def __init__(self, cin: int, cout: int, text_dim: int, stride: int = 1):
        """Create the convolution and the FiLM projection of the text vector."""
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm = nn.GroupNorm(8, cout)
        self.film = nn.Linear(text_dim, 2 * cout)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Return the modulated features of ``x`` under sentence vectors ``text``."""
        scale, shift = self.film(text)[:, :, None, None].chunk(2, dim=1)
        return F.relu(self.norm(self.conv(x)) * (1.0 + scale) + shift)


class KeypointNet(nn.Module):
    """The language-conditioned heatmap network (see the module docstring)."""

    def __init__(self, config: KeypointNetConfig):
        """Build the layers ``config`` describes."""
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        t = 2 * config.text_dim
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=0)
        self.gru = nn.GRU(config.embed_dim, config.text_dim, batch_first=True,
                          bidirectional=True)
        self.stem = nn.Sequential(nn.Conv2d(6, c1, 3, 2, 1), nn.ReLU())
        self.down1 = FiLMBlock(c1, c2, t, stride=2)
        self.mid1 = FiLMBlock(c2, c2, t)
        self.down2 = FiLMBlock(c2, c3, t, stride=2)
        self.mid2 = FiLMBlock(c3, c3, t)
        self.mid3 = FiLMBlock(c3, c3, t)
        self.up = FiLMBlock(c3 + c2, c2, t)
        self.head = nn.Conv2d(c2, len(HEATMAP_KEYPOINTS), 1)
        self.height = nn.Linear(t, len(HEATMAP_KEYPOINTS))
        if config.phrase_match:
            self.queries = nn.Parameter(0.1 * torch.randn(len(HEATMAP_KEYPOINTS), t))
            self.token_keys = nn.Linear(t, t)
            self.to_pixels = nn.Linear(t, c2)
            self.pixel_keys = nn.Conv2d(c2, c2, 1)

    def encode_text(self, tokens: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """
        Return sentence vectors ``B x 2*text_dim`` and per-keypoint phrases ``B x K x 2*text_dim``.

        A keypoint's phrase is its learned query's attention over the GRU's
        token outputs (in context, so 'blue' in 'put the blue cube on ...'
        can tell it names the object to move).
        """
        lengths = (tokens != 0).sum(dim=1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        outputs, hidden = self.gru(packed)
        sentence = torch.cat([hidden[0], hidden[1]], dim=1)
        if not self.config.phrase_match:
            return sentence, None
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True,
                                                      total_length=tokens.shape[1])
        scores = torch.einsum('blt,kt->bkl', self.token_keys(outputs), self.queries)
        padding = torch.arange(tokens.shape[1], device=tokens.device)[None] >= lengths[:, None]
        weights = torch.softmax(scores.masked_fill(padding[:, None], -1e9), dim=-1)
        phrases = torch.einsum('bkl,blt->bkt', weights, outputs)
        return sentence, phrases

    def forward(self, images: torch.Tensor,
                tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return heatmap logits ``BxKxSxS`` and heights ``BxK`` of ``Bx6xHxW`` and ``BxL``."""
        text, phrases = self.encode_text(tokens)
        x = self.stem(images)
        skip = self.mid1(self.down1(x, text), text)
        x = self.mid3(self.mid2(self.down2(skip, text), text), text)
        x = F.interpolate(x, scale_factor=2.0, mode='nearest')
        x = self.up(torch.cat([x, skip], dim=1), text)
        logits = self.head(x)
        if phrases is not None:
            logits = logits + torch.einsum('bchw,bkc->bkhw', self.pixel_keys(x),
                                           self.to_pixels(phrases)) / math.sqrt(x.shape[1])
        return logits, self.height(text)


def heatmap_target(uv: torch.Tensor, size: int, sigma: float = 1.0) -> torch.Tensor:
    """Return ``...xSxS`` Gaussian distributions (sum 1) at heatmap cells ``uv`` (``...x2``)."""
    cells = torch.arange(size, dtype=torch.float32)
    du = (cells - uv[..., 0:1]) ** 2
    dv = (cells - uv[..., 1:2]) ** 2
    logits = -(dv[..., :, None] + du[..., None, :]) / (2 * sigma ** 2)
    return torch.softmax(logits.flatten(-2), dim=-1).view(*uv.shape[:-1], size, size)


def image_to_cells(uv: torch.Tensor) -> torch.Tensor:
    """Return heatmap cell coordinates of image pixels (pixel centres at integers)."""
    return (uv + 0.5) / STRIDE - 0.5


def cells_to_image(uv: torch.Tensor) -> torch.Tensor:
    """Return image pixels of heatmap cell coordinates."""
    return (uv + 0.5) * STRIDE - 0.5


def peaks(logits: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Return sub-pixel image points ``...x2`` and confidences ``...`` of heatmaps ``...xSxS``.

    The point is the probability-weighted mean of the cells within ``window``
    of the most likely cell; the confidence is the probability in that window.
    """
    size = logits.shape[-1]
    probs = torch.softmax(logits.flatten(-2), dim=-1).view_as(logits)
    best = probs.flatten(-2).argmax(dim=-1)
    bv, bu = best // size, best % size
    cells = torch.arange(size)
    near_u = (cells - bu[..., None]).abs() <= window
    near_v = (cells - bv[..., None]).abs() <= window
    mask = near_v[..., :, None] & near_u[..., None, :]
    local = probs * mask
    mass = local.flatten(-2).sum(dim=-1)
    u = (local.sum(dim=-2) * cells).sum(dim=-1) / mass
    v = (local.sum(dim=-1) * cells).sum(dim=-1) / mass
    return cells_to_image(torch.stack([u, v], dim=-1)), mass


def build_model(config: dict, _normalization: Optional[dict] = None) -> KeypointNet:
    """Return a fresh network for a checkpoint config (``load_checkpoint``'s build function)."""
    return KeypointNet(KeypointNetConfig.from_dict(config))
