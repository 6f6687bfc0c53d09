"""
The multi-view MAE: conv stem to patch tokens, ViT encoder and decoder, reward head.

Sizes are CPU-sized by default (64x64 views, 8x8 patches, width 128, 4 encoder
and 2 decoder layers) against RoboHorizon's 8 / 6 layers of width 256: the
config records them, and a checkpoint is only loaded into a model built from
its own config. Pixels are in [0, 1]; the reconstruction loss is the mean
squared error over hidden patches only, as in MAE.
"""

from dataclasses import asdict, dataclass, field
import math
from pathlib import Path
from typing import Union

import torch
from torch import nn
from visual_rl_stack.core.checkpoints import load_checkpoint

#: The MAE's checkpoint folder in a world-model run, and its checkpoint kind.
MAE_DIR, MAE_KIND = 'mae', 'world_model_mae'


@dataclass(frozen=True)
class MAEConfig:
    """Shapes and sizes of a multi-view MAE."""

    views: tuple[str, ...] = ('front', 'side', 'wrist')
    image_size: int = 64
    patch_size: int = 8
    width: int = 128
    encoder_layers: int = 4
    decoder_layers: int = 2
    heads: int = 4
    patch_ratio: float = 0.75
    reward_weight: float = 0.1
    stem_channels: tuple[int, ...] = field(default=(32, 64))

    def __post_init__(self) -> None:
        """Check that the stem's strides tile the image into whole patches."""
        steps = math.log2(self.patch_size)
        if self.patch_size < 2 or steps != int(steps) or self.image_size % self.patch_size:
            raise ValueError(f'patch_size must be a power of two >= 2 dividing image_size, got '
                             f'{self.patch_size} for {self.image_size}')
        if len(self.stem_channels) != int(steps) - 1:
            raise ValueError(f'a {self.patch_size}-pixel patch needs {int(steps) - 1} stem '
                             f'channel counts, got {self.stem_channels}')
        if not self.views or self.width % self.heads:
            raise ValueError('need at least one view and a width divisible by heads')

    @property
    def patches(self) -> int:
        """Return the patch tokens per view."""
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict:
        """Return the config as JSON-ready data."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> 'MAEConfig':
        """Rebuild a config written by :meth:`to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def transformer(width: int, heads: int, layers: int) -> nn.TransformerEncoder:
    """Return a pre-norm transformer encoder stack."""
    layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation='gelu',
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class MultiViewMAE(nn.Module):
    """Encodes the visible tokens of V views, reconstructs every view and predicts reward."""

    def __init__(self, config: MAEConfig):
        """Build stem, embeddings, encoder, decoder and heads from ``config``."""
        super().__init__()
        self.config = c = config
        channels = (3,) + c.stem_channels + (c.width,)
        stem: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(channels, channels[1:])):
            stem.append(nn.Conv2d(a, b, 4, stride=2, padding=1))
            if i < len(channels) - 2:
                stem.append(nn.GELU())
        self.stem = nn.Sequential(*stem)
        self.position = nn.Parameter(torch.randn(1, 1, c.patches, c.width) * 0.02)
        self.view_embedding = nn.Parameter(torch.randn(1, len(c.views), 1, c.width) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.width))
        self.encoder = transformer(c.width, c.heads, c.encoder_layers)
        self.encoder_norm = nn.LayerNorm(c.width)
        self.decoder = transformer(c.width, c.heads, c.decoder_layers)
        self.to_pixels = nn.Linear(c.width, 3 * c.patch_size ** 2)
        self.reward_head = nn.Sequential(nn.Linear(c.width, c.width), nn.GELU(),
                                         nn.Linear(c.width, 1))

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Return ``B x V x P x width`` tokens of ``B x V x 3 x H x W`` images in [0, 1]."""
        c = self.config
        if images.ndim != 5 or images.shape[1:] != (len(c.views), 3, c.image_size,
                                                    c.image_size):
            raise ValueError(f'images must be B x {len(c.views)} x 3 x {c.image_size} x '
                             f'{c.image_size}, got {tuple(images.shape)}')
        b, v = images.shape[:2]
        features = self.stem(images.flatten(0, 1) * 2.0 - 1.0)
        tokens = features.flatten(2).transpose(1, 2).reshape(b, v, c.patches, c.width)
        return tokens + self.position + self.view_embedding

    def encode_visible(self, tokens: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Return the encoded visible tokens, ``B x K x width`` (K the same for every sample)."""
        b = tokens.shape[0]
        flat, keep = tokens.flatten(1, 2), ~masks.flatten(1)
        counts = keep.sum(1)
        if not torch.all(counts == counts[0]):
            raise ValueError('every sample of a batch must keep the same number of tokens')
        visible = flat[keep].reshape(b, int(counts[0]), -1)
        return self.encoder_norm(self.encoder(visible))

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
        """Return (reconstructed patches ``B x V x P x 3p^2``, predicted reward ``B``)."""
        c = self.config
        tokens = self.tokens(images)
        if masks.shape != tokens.shape[:3]:
            raise ValueError(f'masks must be {tuple(tokens.shape[:3])}, got {tuple(masks.shape)}')
        encoded = self.encode_visible(tokens, masks)
        b = tokens.shape[0]
        full = self.mask_token.expand(b, tokens.shape[1] * c.patches, -1).clone()
        full[~masks.flatten(1)] = encoded.reshape(-1, c.width)
        full = full + (self.position + self.view_embedding).flatten(1, 2)
        decoded = self.decoder(full)
        pixels = self.to_pixels(decoded).reshape(b, len(c.views), c.patches, -1)
        return pixels, self.reward_head(encoded.mean(1)).squeeze(-1)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """Return ``B x V x P x 3p^2`` pixel patches of the images (the reconstruction target)."""
        p, n = self.config.patch_size, self.config.image_size // self.config.patch_size
        b, v = images.shape[:2]
        x = images.reshape(b, v, 3, n, p, n, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(b, v, n * n, 3 * p * p)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """Return ``B x V x 3 x H x W`` images of :meth:`patchify`-shaped patches."""
        p, n = self.config.patch_size, self.config.image_size // self.config.patch_size
        b, v = patches.shape[:2]
        x = patches.reshape(b, v, n, n, 3, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, v, 3, n * p, n * p)

    def losses(self, images: torch.Tensor, masks: torch.Tensor,
               reward: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the masked-patch reconstruction loss, the reward loss and their sum."""
        pixels, predicted = self(images, masks)
        error = ((pixels - self.patchify(images)) ** 2).mean(-1)
        reconstruction = (error * masks).sum() / masks.sum().clamp(min=1)
        reward_loss = ((predicted - reward) ** 2).mean()
        return {'reconstruction': reconstruction, 'reward': reward_loss,
                'loss': reconstruction + self.config.reward_weight * reward_loss}

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """
        Return ``B x (V * width)`` features of fully visible views (what the dynamics read).

        Each view's encoded tokens are averaged on their own, so the features
        keep which view saw what.
        """
        tokens = self.tokens(images)
        encoded = self.encoder_norm(self.encoder(tokens.flatten(1, 2)))
        return encoded.reshape(tokens.shape).mean(2).flatten(1)

    @torch.no_grad()
    def predict_progress(self, images: torch.Tensor) -> torch.Tensor:
        """
        Return the staged progress the reward head reads from ``B x V x 3 x H x W`` images.

        As in training, the head sees one view's tokens at a time; the
        prediction is the mean over the views.
        """
        tokens = self.tokens(images)
        predictions = [self.reward_head(self.encoder_norm(self.encoder(tokens[:, v])).mean(1))
                       for v in range(tokens.shape[1])]
        return torch.cat(predictions, -1).mean(-1)

    @property
    def feature_size(self) -> int:
        """Return the size of :meth:`features`."""
        return len(self.config.views) * self.config.width


def load_mae(run: Union[str, Path]) -> MultiViewMAE:
    """Return the frozen MAE of a world-model run folder (or of its ``mae/`` checkpoint)."""
    path = Path(run)
    path = path / MAE_DIR if (path / MAE_DIR).is_dir() else path
    mae = load_checkpoint(path, lambda config, _: MultiViewMAE(MAEConfig.from_dict(config)),
                          MAE_KIND)
    return mae.eval().requires_grad_(False)
