"""
Conditional 1-D temporal U-Net that predicts the noise on an action chunk.

The chunk ``(B, T, action_dim)`` is convolved along time. Every residual block
is FiLM-conditioned: a linear map of [diffusion-step embedding, observation
features] gives a per-channel scale and bias, so the observation steers every
level of the network. Each level but the last halves the time axis, so the
horizon T must be divisible by ``2 ** (len(down_dims) - 1)`` (16 and 32 work
with three levels).
"""

import math
from typing import Sequence

import torch
from torch import nn


class SinusoidalStepEmbedding(nn.Module):
    """Embed integer diffusion steps as sines and cosines of geometric frequencies."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f'step embedding size must be even, got {dim}')
        self.dim = dim

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        """Return ``(B, dim)`` embeddings of ``(B,)`` steps."""
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) / (half - 1) * torch.arange(
            half, device=steps.device, dtype=torch.float32))
        angles = steps.float()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConvNormMish(nn.Sequential):
    """Conv1d, GroupNorm and Mish: the unit every block is built from."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int):
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )


class FiLMResidualBlock(nn.Module):
    """Two conv units with a FiLM (scale, bias) from the condition between them."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int,
                 n_groups: int):
        super().__init__()
        self.first = ConvNormMish(in_channels, out_channels, kernel_size, n_groups)
        self.second = ConvNormMish(out_channels, out_channels, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.shortcut = (nn.Conv1d(in_channels, out_channels, 1)
                         if in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C_in, T)`` to ``(B, C_out, T)`` under condition ``(B, cond_dim)``."""
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        hidden = self.first(x) * scale + bias
        return self.second(hidden) + self.shortcut(x)


class ConditionalUnet1D(nn.Module):
    """Noise predictor ``eps(x_t, t, cond)`` over action chunks (see the module doc)."""

    def __init__(self, action_dim: int, global_cond_dim: int,
                 down_dims: Sequence[int] = (64, 128, 256), kernel_size: int = 5,
                 n_groups: int = 8, step_embed_dim: int = 128):
        super().__init__()
        if any(d % n_groups for d in down_dims):
            raise ValueError(f'every down dim {tuple(down_dims)} must divide by {n_groups} groups')
        self.time_divisor = 2 ** (len(down_dims) - 1)
        self.step_encoder = nn.Sequential(
            SinusoidalStepEmbedding(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        cond_dim = step_embed_dim + global_cond_dim
        widths = [action_dim, *down_dims]
        levels = list(zip(widths[:-1], widths[1:]))

        def block(c_in: int, c_out: int) -> FiLMResidualBlock:
            return FiLMResidualBlock(c_in, c_out, cond_dim, kernel_size, n_groups)

        self.down = nn.ModuleList(
            nn.ModuleList([block(c_in, c_out), block(c_out, c_out),
                           nn.Conv1d(c_out, c_out, 3, stride=2, padding=1)
                           if i < len(levels) - 1 else nn.Identity()])
            for i, (c_in, c_out) in enumerate(levels))
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]) for _ in range(2)])
        self.up = nn.ModuleList(
            nn.ModuleList([block(2 * c_out, c_in), block(c_in, c_in),
                           nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1)])
            for c_in, c_out in reversed(levels[1:]))
        self.head = nn.Sequential(
            ConvNormMish(down_dims[0], down_dims[0], kernel_size, n_groups),
            nn.Conv1d(down_dims[0], action_dim, 1),
        )

    def forward(self, sample: torch.Tensor, steps: torch.Tensor,
                global_cond: torch.Tensor) -> torch.Tensor:
        """Predict ``(B, T, action_dim)`` from a noisy chunk, ``(B,)`` steps, ``(B, C)`` cond."""
        if sample.shape[1] % self.time_divisor:
            raise ValueError(f'horizon {sample.shape[1]} must be divisible by '
                             f'{self.time_divisor} for this many U-Net levels')
        steps = steps.expand(sample.shape[0]) if steps.dim() == 0 else steps
        cond = torch.cat([self.step_encoder(steps), global_cond], dim=-1)
        x = sample.transpose(1, 2)
        skips = []
        for first, second, downsample in self.down:
            x = second(first(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, cond)
        for (first, second, upsample), skip in zip(self.up, reversed(skips[1:])):
            x = second(first(torch.cat([x, skip], dim=1), cond), cond)
            x = upsample(x)
        return self.head(x).transpose(1, 2)
