"""
Validate camera frames and bring them to the models' resolution.

Each check raises :class:`FrameRejected` naming the view, the stream and the
check that failed, so the camera node can drop the frame and say why on
``/diagnostics`` instead of feeding the models a wrong image.
"""

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
from PIL import Image as PILImage
from visual_rl_stack.core.image_buffers import (camera_info_to_matrix, CameraInfoLike,
                                                ConversionError, image_to_array, ImageLike)

#: Colour encodings the node accepts (converted to RGB, alpha dropped).
COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8')
#: Depth encodings and the factor to metres (REP-118: 16-bit depth is millimetres).
DEPTH_SCALE = {'32FC1': 1.0, '16UC1': 1e-3, 'mono16': 1e-3}


class FrameRejected(ConversionError):
    """A camera frame failed a check; says which view, stream and check."""

    def __init__(self, view: str, stream: str, check: str, message: str,
                 values: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(f'{view} {stream}: {message}')
        self.view = view
        self.stream = stream
        self.check = check
        self.values = dict(values or {})


@dataclass(frozen=True)
class ViewFrame:
    """One view at model resolution: RGB, depth in metres (NaN = no reading), intrinsics."""

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HxWx3 uint8 image: area averaging when shrinking, bilinear otherwise."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrinking = width <= rgb.shape[1] and height <= rgb.shape[0]
    method = PILImage.Resampling.BOX if shrinking else PILImage.Resampling.BILINEAR
    return np.asarray(PILImage.fromarray(rgb).resize((width, height), method))


def resize_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize depth by nearest neighbour, so no depth is invented across edges."""
    rows = np.minimum((np.arange(height) + 0.5) * depth.shape[0] / height, depth.shape[0] - 1)
    cols = np.minimum((np.arange(width) + 0.5) * depth.shape[1] / width, depth.shape[1] - 1)
    return depth[rows.astype(int)[:, None], cols.astype(int)[None, :]]


def scale_intrinsics(K: np.ndarray, src_size: tuple[int, int],
                     dst_size: tuple[int, int]) -> np.ndarray:
    """
    Return K for an image resized from ``src_size`` to ``dst_size`` (width, height).

    Pixel centres sit at integer coordinates, so the principal point scales
    about the image corner at (-0.5, -0.5); this keeps every viewing ray.
    """
    sx = dst_size[0] / src_size[0]
    sy = dst_size[1] / src_size[1]
    scaled = np.array(K, dtype=float)
    scaled[0, 0] *= sx
    scaled[0, 1] *= sx
    scaled[1, 1] *= sy
    scaled[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    scaled[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return scaled


def tile_views(images: Mapping[str, np.ndarray], order: Sequence[str]) -> np.ndarray:
    """Place the views' images side by side, left to right in ``order``."""
    missing = [view for view in order if view not in images]
    if missing:
        raise ValueError(f'cannot tile: missing views {missing}')
    shapes = {images[view].shape for view in order}
    if len(shapes) != 1:
        raise ValueError(f'cannot tile views of different shapes {sorted(shapes)}')
    return np.concatenate([images[view] for view in order], axis=1)


def invalid_depth(depth: np.ndarray) -> dict[str, float]:
    """Return the fractions of NaN, infinite and non-positive depth pixels, and their sum."""
    nan = np.isnan(depth)
    inf = np.isinf(depth)
    with np.errstate(invalid='ignore'):
        non_positive = ~nan & (depth <= 0)
    fractions = {'nan': nan.mean(), 'inf': inf.mean(), 'non_positive': non_positive.mean()}
    fractions['invalid'] = sum(fractions.values())
    return {name: float(value) for name, value in fractions.items()}


def decode_color(view: str, msg: ImageLike, info: CameraInfoLike) -> np.ndarray:
    """Check and unpack a colour image into HxWx3 RGB uint8."""
    _check_encoding(view, 'color', msg, COLOR_ENCODINGS)
    _check_size(view, 'color', msg, info)
    return _to_array(view, 'color', msg)[:, :, :3]


def decode_depth(view: str, msg: ImageLike, info: CameraInfoLike,
                 max_invalid_fraction: float) -> np.ndarray:
    """
    Check and unpack a depth image into HxW float32 metres with NaN where invalid.

    Rejects frames with more than ``max_invalid_fraction`` pixels without a
    reading (NaN, inf or <= 0), reporting how much of each kind there was.
    """
    _check_encoding(view, 'depth', msg, tuple(DEPTH_SCALE))
    _check_size(view, 'depth', msg, info)
    depth = _to_array(view, 'depth', msg).astype(np.float32) * DEPTH_SCALE[msg.encoding]
    fractions = invalid_depth(depth)
    if fractions['invalid'] > max_invalid_fraction:
        raise FrameRejected(
            view, 'depth', 'invalid_depth',
            f'{fractions["invalid"]:.1%} of depth pixels have no reading (NaN '
            f'{fractions["nan"]:.1%}, inf {fractions["inf"]:.1%}, <= 0 '
            f'{fractions["non_positive"]:.1%}); limit max_invalid_depth_fraction is '
            f'{max_invalid_fraction:.1%}',
            {name: f'{value:.4f}' for name, value in fractions.items()})
    with np.errstate(invalid='ignore'):
        return np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)


def prepare_view(view: str, color: ImageLike, depth: ImageLike, info: CameraInfoLike,
                 width: int, height: int, max_invalid_depth_fraction: float) -> ViewFrame:
    """Check one view's messages and resize them to ``width`` x ``height`` with matching K."""
    K = camera_info_to_matrix(info)
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise FrameRejected(view, 'camera_info', 'intrinsics',
                            f'focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}')
    rgb = decode_color(view, color, info)
    metres = decode_depth(view, depth, info, max_invalid_depth_fraction)
    return ViewFrame(rgb=resize_rgb(rgb, width, height),
                     depth=resize_depth(metres, width, height),
                     K=scale_intrinsics(K, (info.width, info.height), (width, height)))


def _check_encoding(view: str, stream: str, msg: ImageLike, allowed: Sequence[str]) -> None:
    """Reject encodings the node does not handle for this stream."""
    if msg.encoding not in allowed:
        raise FrameRejected(view, stream, 'encoding',
                            f'unsupported encoding {msg.encoding!r}; expected one of '
                            f'{", ".join(allowed)}',
                            {'encoding': msg.encoding, 'expected': ', '.join(allowed)})


def _check_size(view: str, stream: str, msg: ImageLike, info: CameraInfoLike) -> None:
    """Reject images whose size differs from their CameraInfo (K would not apply)."""
    if (msg.width, msg.height) != (info.width, info.height):
        raise FrameRejected(view, stream, 'size',
                            f'image is {msg.width}x{msg.height} but camera_info says '
                            f'{info.width}x{info.height}',
                            {'image': f'{msg.width}x{msg.height}',
                             'camera_info': f'{info.width}x{info.height}'})


def _to_array(view: str, stream: str, msg: ImageLike) -> np.ndarray:
    """Unpack an image, turning conversion failures into a ``FrameRejected``."""
    try:
        return image_to_array(msg)
    except ConversionError as exc:
        raise FrameRejected(view, stream, 'conversion', str(exc)) from exc


def split_tiled(tiled: np.ndarray, views: tuple, image_size: tuple) -> dict[str, np.ndarray]:
    """
    Split a left-to-right tiled ``(H, n*W, 3)`` image into ``{view: (H, W, 3)}``.

    The inverse of :func:`tile_views`. Raises ValueError when the size does
    not match ``len(views)`` views of ``image_size = (H, W)``.
    """
    height, width = int(image_size[0]), int(image_size[1])
    expected = (height, width * len(views))
    if tiled.ndim != 3 or tiled.shape[:2] != expected or tiled.shape[2] < 3:
        raise ValueError(
            f'tiled image is {tiled.shape[1]}x{tiled.shape[0]} but the model needs views '
            f'{list(views)} of {width}x{height} side by side ({expected[1]}x{expected[0]}); '
            "set the camera node's cameras and image_width/image_height to match")
    return {view: np.ascontiguousarray(tiled[:, i * width:(i + 1) * width, :3])
            for i, view in enumerate(views)}
