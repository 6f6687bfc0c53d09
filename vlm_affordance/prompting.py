"""
Visual prompts in the style of MOKA: numbered candidate points and a lettered grid.

Candidates come from each view's depth, never from simulator state, so the same
code runs on a real camera: pixels whose world point stands ``margin`` above the
table top inside the workspace form connected regions, and each region large
enough to be an object gets its centre plus farthest-point samples. The robot's
own links are regions like any other; pass ``exclude`` masks to keep them (or
anything else) out. Flat things on the table (goal discs) stand too low to be
candidates: a model points at those through the grid.

The grid's tiles are named as in :mod:`.grid` (``'a1'`` bottom-left). Candidate pixels
are in the ORIGINAL image; prompt images may be upscaled so that the numbers
stay legible, and :attr:`Prompt.original_sizes` records the original sizes.
"""

from dataclasses import asdict
import json
import math
from pathlib import Path
import string
from typing import Mapping, Optional, Sequence

import cv2
import numpy as np
from visual_rl_stack.sim.cameras import CameraFrame

from .affordance import Candidate, Prompt
from .grid import grid_shape, Size
from .lifting import Tabletop, world_points

MARKER_COLOR = (230, 40, 40)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def object_mask(frame: CameraFrame, tabletop: Tabletop = Tabletop(), margin: float = 0.01,
                exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """Return the ``HxW`` pixels that see something ``margin`` over the table, in the workspace."""
    points = world_points(frame)
    with np.errstate(invalid='ignore'):
        mask = ((points[..., 2] > tabletop.table_z + margin) & (points[..., 2] <= tabletop.max_z)
                & tabletop.inside_xy(points))
    if exclude is not None:
        if exclude.shape != mask.shape:
            raise ValueError(f'exclude mask of view {frame.name!r} has shape {exclude.shape}, '
                             f'the image {mask.shape}')
        mask &= ~exclude.astype(bool)
    return mask


def region_samples(region: np.ndarray, count: int,
                   min_spacing: float = 0.0) -> list[tuple[int, int]]:
    """
    Return up to ``count`` pixels ``(u, v)`` of a region: its centre, then farthest points.

    Samples are drawn one pixel inside the region's border (when it has an
    inside) so that a depth window around them stays on the object. None is
    closer than ``min_spacing`` pixels to another: a small object gets fewer
    samples rather than numbers printed over each other.
    """
    core = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    vs, us = np.nonzero(core if core.any() else region)
    pixels = np.stack([us, vs], axis=1).astype(np.float64)
    dist = np.linalg.norm(pixels - pixels.mean(axis=0), axis=1)
    chosen = [int(np.argmin(dist))]
    dist = np.linalg.norm(pixels - pixels[chosen[0]], axis=1)
    while len(chosen) < count and dist.max() > 0 and dist.max() >= min_spacing:
        chosen.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(pixels - pixels[chosen[-1]], axis=1))
    return [(int(us[i]), int(vs[i])) for i in chosen]


def find_candidates(frames: Mapping[str, CameraFrame], per_object: int = 6,
                    tabletop: Tabletop = Tabletop(), margin: float = 0.01,
                    min_area: float = 5e-4,
                    exclude: Optional[Mapping[str, np.ndarray]] = None,
                    min_spacing: float = 0.03) -> tuple[Candidate, ...]:
    """
    Return numbered candidates (from 1, across views in order) on the objects each view sees.

    Regions smaller than ``min_area`` (a fraction of the image: 8 pixels at
    128x128) are noise or slivers and are dropped. ``exclude`` maps view names to
    boolean masks of pixels that must not be candidates. Candidates of an
    object are at least ``min_spacing`` of the image's shorter side apart
    (4 pixels at 128x128, 16 in a prompt drawn 4x larger), so their numbers stay legible.
    """
    if per_object < 1:
        raise ValueError(f'per_object must be >= 1, got {per_object}')
    exclude = exclude or {}
    candidates: list[Candidate] = []
    for view, frame in frames.items():
        mask = object_mask(frame, tabletop, margin, exclude.get(view))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                                   connectivity=8)
        regions = [i for i in range(1, count)
                   if stats[i, cv2.CC_STAT_AREA] >= min_area * mask.size]
        for region, label in enumerate(regions, start=1):
            spacing = min_spacing * min(mask.shape)
            for u, v in region_samples(labels == label, per_object, spacing):
                candidates.append(Candidate(len(candidates) + 1, view, float(u), float(v), region))
    return tuple(candidates)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """Write white text with a black outline, legible on any background."""
    cv2.putText(image, text, origin, FONT, scale, BLACK, 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, FONT, scale, WHITE, 1, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, candidates: Sequence[Candidate] = (),
                 grid: Sequence[int] = (5, 5), original_size: Optional[Size] = None) -> np.ndarray:
    """
    Return a copy of an RGB image with the grid, its tile names and numbered candidate markers.

    ``candidates`` are in pixels of an image of ``original_size`` (default: this
    image's), so an upscaled image gets its markers at the scaled positions.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'need an HxWx3 uint8 image, got {image.dtype} {image.shape}')
    columns, rows = grid_shape(grid)
    out = np.ascontiguousarray(image).copy()
    height, width = out.shape[:2]
    sx, sy = (1.0, 1.0) if original_size is None else (width / original_size[0],
                                                       height / original_size[1])
    scale = max(min(width, height) / 800, 0.25)
    for c in range(1, columns):
        x = round(c * width / columns - 0.5)
        cv2.line(out, (x, 0), (x, height - 1), WHITE, 1)
    for r in range(1, rows):
        y = round(r * height / rows - 0.5)
        cv2.line(out, (0, y), (width - 1, y), WHITE, 1)
    label_height = cv2.getTextSize('a1', FONT, scale, 1)[0][1]
    for c in range(columns):
        for r in range(rows):
            x, y = round(c * width / columns) + 2, round(r * height / rows) + label_height + 3
            _text(out, f'{string.ascii_lowercase[c]}{rows - r}', (x, y), scale)
    radius = max(2, round(min(width, height) / 100))
    centres = [(round((c.u + 0.5) * sx - 0.5), round((c.v + 0.5) * sy - 0.5)) for c in candidates]
    for cand, (x, y) in zip(candidates, centres):
        _text(out, str(cand.number), (x + radius + 1, y - radius), scale)
    for centre in centres:  # markers last: a neighbour's number must not hide the point
        cv2.circle(out, centre, radius, MARKER_COLOR, -1, cv2.LINE_AA)
        cv2.circle(out, centre, radius, WHITE, 1, cv2.LINE_AA)
    return out


def build_prompt(frames: Mapping[str, CameraFrame], instruction: str,
                 candidates: Optional[Sequence[Candidate]] = None,
                 grid: Sequence[int] = (5, 5), min_side: int = 512) -> Prompt:
    """
    Return the prompt a model sees: overlays on every view, the instruction and the candidates.

    The frames themselves travel in :attr:`Prompt.frames` for RGB-D backends.
    ``candidates=None`` finds them in the views' depth (:func:`find_candidates`);
    pass ``()`` for a grid-only prompt. Views whose shorter side is below
    ``min_side`` pixels are upscaled by an integer factor before drawing.
    """
    if not frames:
        raise ValueError('build_prompt needs at least one camera frame')
    if candidates is None:
        candidates = find_candidates(frames)
    images, sizes = {}, {}
    for view, frame in frames.items():
        height, width = frame.rgb.shape[:2]
        factor = max(1, math.ceil(min_side / min(width, height)))
        rgb = cv2.resize(frame.rgb, (width * factor, height * factor),
                         interpolation=cv2.INTER_LINEAR) if factor > 1 else frame.rgb
        own = [c for c in candidates if c.view == view]
        images[view] = draw_overlay(rgb, own, grid, (width, height))
        sizes[view] = (width, height)
    return Prompt(instruction, images, tuple(candidates), tuple(grid_shape(grid)), sizes,
                  dict(frames))


def save_prompt(prompt: Prompt, folder: Path) -> list[Path]:
    """Write each prompt image as ``<view>.png`` and ``prompt.json``; return the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for view, image in prompt.images.items():
        if not view or Path(view).name != view:
            raise ValueError(f'view name {view!r} cannot be a file name')
        path = folder / f'{view}.png'
        if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f'could not write {path}')
        written.append(path)
    meta = {
        'instruction': prompt.instruction,
        'grid': list(prompt.grid),
        'views': {view: {'image': f'{view}.png', 'original_size': list(prompt.size_of(view)),
                         'image_size': [image.shape[1], image.shape[0]]}
                  for view, image in prompt.images.items()},
        'candidates': [asdict(c) for c in prompt.candidates],
    }
    path = folder / 'prompt.json'
    path.write_text(json.dumps(meta, indent=2) + '\n')
    return written + [path]
