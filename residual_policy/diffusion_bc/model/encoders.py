"""
Observation encoders that turn state and/or camera views into the U-Net's condition.

Images arrive as ``(B, n_obs, V, H, W, 3)`` in channel-last RGB, either uint8
(0-255) or float (0-1), exactly as the camera pipeline stores them; they are
scaled to [-1, 1] here. The vision trunk uses GroupNorm rather than BatchNorm
because EMA weight averaging breaks BatchNorm's running statistics. Features of
the ``n_obs`` steps are concatenated, so the condition size is ``n_obs`` times
the per-step feature size.
"""

from typing import Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F

from .config import OBS_MODES


class StateEncoder(nn.Module):
    """
    MLP over the normalised state; with no hidden layers the state passes through.

    Passing the state straight through is what ResiP and the original diffusion
    policy do (the FiLM layers are already a learned map of the condition).
    """

    def __init__(self, state_dim: int, hidden_dims: Sequence[int] = ()):
        super().__init__()
        layers: list[nn.Module] = []
        width = state_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.Mish()]
            width = hidden
        self.net = nn.Sequential(*layers)
        self.output_dim = width

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Map ``(..., state_dim)`` to ``(..., output_dim)``."""
        return self.net(state)


class ResidualConvBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with GroupNorm; stride 2 halves the image."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, n_groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.GroupNorm(n_groups, out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.GroupNorm(n_groups, out_channels),
        )
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                          nn.GroupNorm(n_groups, out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block with its skip connection."""
        return F.relu(self.body(x) + self.shortcut(x))


class SpatialSoftmax(nn.Module):
    """Reduce a feature map to K expected (x, y) keypoint positions in [-1, 1]."""

    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.to_keypoints = nn.Conv2d(in_channels, num_keypoints, 1)
        self.output_dim = 2 * num_keypoints

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, h, w)`` to ``(N, 2K)`` as [x_1, y_1, ..., x_K, y_K]."""
        heat = self.to_keypoints(features)
        n, k, h, w = heat.shape
        attention = heat.flatten(2).softmax(dim=-1)
        ys = torch.linspace(-1, 1, h, device=heat.device, dtype=attention.dtype)
        xs = torch.linspace(-1, 1, w, device=heat.device, dtype=attention.dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        grid = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)
        return (attention @ grid).reshape(n, 2 * k)


class ImageTrunk(nn.Module):
    """Small ResNet-style CNN, spatial-softmax keypoints, then a linear feature layer."""

    def __init__(self, channels: Sequence[int], num_keypoints: int, feature_dim: int,
                 n_groups: int = 8):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, channels[0], 5, 2, 2, bias=False),
            nn.GroupNorm(n_groups, channels[0]),
            nn.ReLU(),
        ]
        width = channels[0]
        for i, out in enumerate(channels):
            layers.append(ResidualConvBlock(width, out, 1 if i == 0 else 2, n_groups))
            width = out
        self.backbone = nn.Sequential(*layers)
        self.pool = SpatialSoftmax(width, num_keypoints)
        self.project = nn.Linear(self.pool.output_dim, feature_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 3, H, W)`` in [-1, 1] to ``(N, feature_dim)``."""
        return self.project(self.pool(self.backbone(images)))


def crop_images(images: torch.Tensor, size: tuple[int, int], random: bool) -> torch.Tensor:
    """Crop ``(N, C, H, W)`` to ``size``: an independent random window per image, or the centre."""
    n, _, height, width = images.shape
    crop_h, crop_w = size
    if not random:
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        return images[:, :, top:top + crop_h, left:left + crop_w]
    top = torch.randint(0, height - crop_h + 1, (n, 1), device=images.device)
    left = torch.randint(0, width - crop_w + 1, (n, 1), device=images.device)
    rows = top + torch.arange(crop_h, device=images.device)
    cols = left + torch.arange(crop_w, device=images.device)
    batch = torch.arange(n, device=images.device)[:, None, None]
    cropped = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2)


class MultiViewImageEncoder(nn.Module):
    """
    Encode V camera views per step: one trunk per view, or one trunk shared by all.

    Training applies a random crop of ``crop_fraction`` of each side (data
    augmentation); evaluation takes the centre crop of the same size, so the
    trunk always sees the same resolution.
    """

    def __init__(self, num_views: int, image_size: tuple[int, int], shared: bool = False,
                 channels: Sequence[int] = (32, 64, 128), num_keypoints: int = 32,
                 feature_dim: int = 64, crop_fraction: float = 0.9):
        super().__init__()
        if not 0 < crop_fraction <= 1:
            raise ValueError(f'crop_fraction must be in (0, 1], got {crop_fraction}')
        self.num_views = num_views
        self.image_size = tuple(image_size)
        self.crop_size = tuple(max(1, round(s * crop_fraction)) for s in image_size)
        self.shared = shared
        trunks = 1 if shared else num_views
        self.trunks = nn.ModuleList(
            ImageTrunk(channels, num_keypoints, feature_dim) for _ in range(trunks))
        self.output_dim = num_views * feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map ``(B, V, H, W, 3)`` uint8 or [0, 1] float images to ``(B, V * feature_dim)``."""
        batch, views, height, width, _ = images.shape
        if views != self.num_views or (height, width) != self.image_size:
            raise ValueError(f'expected {self.num_views} views of {self.image_size}, '
                             f'got {views} of {(height, width)}')
        scale = 255.0 if images.dtype == torch.uint8 else 1.0
        pixels = images.permute(0, 1, 4, 2, 3).float() / scale * 2 - 1
        pixels = crop_images(pixels.flatten(0, 1), self.crop_size, self.training)
        pixels = pixels.unflatten(0, (batch, views))
        if self.shared:
            features = self.trunks[0](pixels.flatten(0, 1)).unflatten(0, (batch, views))
        else:
            features = torch.stack(
                [trunk(pixels[:, v]) for v, trunk in enumerate(self.trunks)], dim=1)
        return features.flatten(1)


class ObservationEncoder(nn.Module):
    """Concatenate state and/or image features over the ``n_obs`` steps (see the module doc)."""

    def __init__(self, obs_mode: str, n_obs_steps: int, state_encoder: Optional[StateEncoder],
                 image_encoder: Optional[MultiViewImageEncoder]):
        super().__init__()
        if obs_mode not in OBS_MODES:
            raise ValueError(f'obs_mode must be one of {OBS_MODES}, got {obs_mode!r}')
        if ('state' in obs_mode) != (state_encoder is not None):
            raise ValueError(f'obs_mode {obs_mode!r} and the state encoder disagree')
        if ('image' in obs_mode) != (image_encoder is not None):
            raise ValueError(f'obs_mode {obs_mode!r} and the image encoder disagree')
        self.n_obs_steps = n_obs_steps
        self.state_encoder = state_encoder
        self.image_encoder = image_encoder
        per_step = sum(e.output_dim for e in (state_encoder, image_encoder) if e is not None)
        self.output_dim = n_obs_steps * per_step

    def forward(self, state: Optional[torch.Tensor] = None,
                images: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode ``state (B, n_obs, S)`` (normalised) and/or ``images (B, n_obs, V, H, W, 3)``."""
        parts = []
        if self.state_encoder is not None:
            parts.append(self.state_encoder(self._check_steps(state, 'state')))
        if self.image_encoder is not None:
            images = self._check_steps(images, 'images')
            encoded = self.image_encoder(images.flatten(0, 1))
            parts.append(encoded.unflatten(0, images.shape[:2]))
        return torch.cat(parts, dim=-1).flatten(1)

    def _check_steps(self, value: Optional[torch.Tensor], name: str) -> torch.Tensor:
        """Require ``value`` to be present with ``n_obs_steps`` on axis 1."""
        if value is None:
            raise ValueError(f'this policy needs {name!r} in the observation')
        if value.dim() < 3 or value.shape[1] != self.n_obs_steps:
            raise ValueError(f'{name} must be (B, {self.n_obs_steps}, ...), '
                             f'got {tuple(value.shape)}')
        return value
