"""
Per-episode visual domain randomisation.

Everything is drawn from the episode's own RNG stream, separate from the task's
stream, so switching randomisation on never changes the initial object layout
of a seed, and the same seed always gives the same look.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Sequence

import numpy as np
from PIL import Image
import pybullet as pb

from .cameras import Camera
from .config import RandomizationConfig
from .tasks.base import create_box, create_marker

TEXTURE_COUNT = 4
TEXTURE_SIZE = 64
DISTRACTOR_COUNT = 3
# Table strips beside the workspace where distractors cannot get in the way.
DISTRACTOR_Y = (0.28, 0.42)
DISTRACTOR_X = (0.3, 0.8)
JITTER_EYE_M = 0.03
JITTER_TARGET_M = 0.03


def _procedural_texture(rng: np.random.Generator) -> np.ndarray:
    """Return an RGB tile pattern with per-tile shading and fine noise."""
    tiles = int(rng.integers(2, 9))
    base = rng.uniform(60, 220, size=3)
    shade = rng.uniform(0.6, 1.0, size=(tiles, tiles, 1))
    cell = TEXTURE_SIZE // tiles + 1
    img = np.kron(shade, np.ones((cell, cell, 1)))[:TEXTURE_SIZE, :TEXTURE_SIZE] * base
    img = img + rng.normal(0, 8, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


class Randomizer:
    """Applies a ``RandomizationConfig`` to one simulator at every reset."""

    def __init__(self, config: RandomizationConfig, client: int, table: int):
        """Create the textures and distractor bodies the config asks for."""
        self.config = config
        self.client = client
        self.table = table
        self.light: dict[str, Any] = {}
        self.textures = self._load_textures() if config.background == 'textured' else []
        self.distractors = self._distractors() if config.background == 'distractors' else []

    def _load_textures(self) -> list[int]:
        """Write a few procedural textures to temporary PNGs and load them."""
        rng = np.random.default_rng(0)
        ids = []
        with tempfile.TemporaryDirectory() as folder:
            for i in range(TEXTURE_COUNT):
                path = os.path.join(folder, f'table_{i}.png')
                Image.fromarray(_procedural_texture(rng)).save(path)
                ids.append(pb.loadTexture(path, physicsClientId=self.client))
        return ids

    def _distractors(self) -> list[int]:
        """Create visual-only clutter (no collision shape, so physics is unchanged)."""
        ids = []
        for i in range(DISTRACTOR_COUNT):
            if i % 2:
                ids.append(create_marker(self.client, 0.025, (0.5, 0.5, 0.5, 1.0)))
            else:
                uid = create_box(self.client, [0.02, 0.03, 0.025], (0.5, 0.5, 0.5, 1.0), 0.0)
                pb.setCollisionFilterGroupMask(uid, -1, 0, 0, physicsClientId=self.client)
                ids.append(uid)
        return ids

    def apply(self, rng: np.random.Generator, objects: Sequence[int],
              cameras: Sequence[Camera]) -> None:
        """Draw this episode's colours, light, camera offsets and background."""
        cfg = self.config
        if cfg.object_colors:
            for uid in objects:
                self._color(uid, rng)
        self.light = self._light(rng) if cfg.lighting else {}
        for cam in cameras if cfg.camera_jitter else ():
            cam.set_jitter(rng.uniform(-JITTER_EYE_M, JITTER_EYE_M, 3),
                           rng.uniform(-JITTER_TARGET_M, JITTER_TARGET_M, 3))
        if self.textures:
            texture = self.textures[int(rng.integers(len(self.textures)))]
            pb.changeVisualShape(self.table, -1, textureUniqueId=texture,
                                 rgbaColor=(1, 1, 1, 1), physicsClientId=self.client)
        for uid in self.distractors:
            self._color(uid, rng)
            side = rng.choice([-1.0, 1.0])
            xy = (rng.uniform(*DISTRACTOR_X), side * rng.uniform(*DISTRACTOR_Y))
            orn = pb.getQuaternionFromEuler((0, 0, rng.uniform(-np.pi, np.pi)))
            pb.resetBasePositionAndOrientation(uid, (xy[0], xy[1], 0.025), orn,
                                               physicsClientId=self.client)

    def _color(self, uid: int, rng: np.random.Generator) -> None:
        """Give a body a random saturated colour."""
        rgb = rng.uniform(0.1, 0.95, size=3)
        pb.changeVisualShape(uid, -1, rgbaColor=(*rgb, 1.0), physicsClientId=self.client)

    @staticmethod
    def _light(rng: np.random.Generator) -> dict[str, Any]:
        """Return getCameraImage light arguments for a random light above the table."""
        azimuth = rng.uniform(-np.pi, np.pi)
        elevation = rng.uniform(0.4, 1.4)
        direction = [np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation),
                     np.sin(elevation)]
        return {'lightDirection': direction,
                'lightColor': rng.uniform(0.7, 1.0, size=3).tolist(),
                'lightAmbientCoeff': float(rng.uniform(0.3, 0.7)),
                'lightDiffuseCoeff': float(rng.uniform(0.3, 0.7))}
