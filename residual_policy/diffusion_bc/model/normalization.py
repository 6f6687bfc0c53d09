"""
Per-dimension min-max normalisation to [-1, 1], as diffusion policies expect.

A dimension whose range is below ``eps`` (e.g. an unused gripper channel) has
no meaningful scale: it maps to 0 and denormalises back to its constant, so
it can neither blow up nor drift. Works on numpy arrays and torch tensors of
shape ``(..., D)``; stats serialise to plain JSON.
"""

from typing import TypeVar, Union

import numpy as np
import torch

Array = TypeVar('Array', np.ndarray, torch.Tensor)


class MinMaxNormalizer:
    """Map each of D dimensions from ``[low, high]`` to ``[-1, 1]`` and back."""

    def __init__(self, low: np.ndarray, high: np.ndarray, eps: float = 1e-6):
        self.low = np.asarray(low, dtype=np.float32).reshape(-1)
        self.high = np.asarray(high, dtype=np.float32).reshape(-1)
        if self.low.shape != self.high.shape:
            raise ValueError(f'low {self.low.shape} and high {self.high.shape} differ in shape')
        if np.any(self.high < self.low):
            raise ValueError('every high must be >= its low')
        self.eps = float(eps)
        self.center = (self.high + self.low) / 2
        self.constant = (self.high - self.low) < self.eps
        self.half_range = np.where(self.constant, 0.0, (self.high - self.low) / 2).astype(
            np.float32)

    @classmethod
    def fit(cls, data: Union[np.ndarray, torch.Tensor], eps: float = 1e-6) -> 'MinMaxNormalizer':
        """Fit the stats over every leading axis of ``data`` of shape ``(..., D)``."""
        flat = np.asarray(data, dtype=np.float32).reshape(-1, np.shape(data)[-1])
        if not np.all(np.isfinite(flat)):
            raise ValueError('cannot fit a normaliser to data with NaN or inf')
        return cls(flat.min(axis=0), flat.max(axis=0), eps)

    @property
    def dim(self) -> int:
        """Return the number of normalised dimensions."""
        return self.low.shape[0]

    def normalize(self, x: Array) -> Array:
        """Map raw values to [-1, 1]; constant dimensions become 0."""
        center, half_range, constant = self._stats_like(x)
        safe = half_range + constant  # 1 where constant, to avoid dividing by zero
        scaled = (x - center) / safe
        return scaled * (1 - constant)

    def denormalize(self, x: Array) -> Array:
        """Map [-1, 1] back to raw units; constant dimensions return their constant."""
        center, half_range, _ = self._stats_like(x)
        return x * half_range + center

    def to_dict(self) -> dict:
        """Return JSON-ready stats."""
        return {'low': self.low.tolist(), 'high': self.high.tolist(), 'eps': self.eps}

    @classmethod
    def from_dict(cls, data: dict) -> 'MinMaxNormalizer':
        """Rebuild from :meth:`to_dict` output."""
        return cls(np.asarray(data['low']), np.asarray(data['high']), data.get('eps', 1e-6))

    def _stats_like(self, x: Array) -> tuple:
        """Return (center, half_range, constant as 0/1) in x's library, dtype and device."""
        if x.shape[-1] != self.dim:
            raise ValueError(f'expected last dimension {self.dim}, got shape {tuple(x.shape)}')
        stats = (self.center, self.half_range, self.constant.astype(np.float32))
        if isinstance(x, torch.Tensor):
            return tuple(torch.as_tensor(s, dtype=x.dtype, device=x.device) for s in stats)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return tuple(s.astype(dtype, copy=False) for s in stats)
