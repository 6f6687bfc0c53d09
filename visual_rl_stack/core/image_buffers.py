"""
Image buffers as ROS lays them out, decoded without ROS: encodings, rows, intrinsics.

``sensor_msgs/Image`` and ``CameraInfo`` messages satisfy :class:`ImageLike` and
:class:`CameraInfoLike`, so the ROS nodes pass their messages straight in, and
the perception core and the bag reader decode them without importing ROS.
"""

from typing import Protocol, Sequence

import numpy as np


class ImageLike(Protocol):
    """The fields of a ``sensor_msgs/Image`` the decoder reads."""

    encoding: str
    width: int
    height: int
    step: int
    is_bigendian: int
    data: Sequence[int]


class CameraInfoLike(Protocol):
    """The fields of a ``sensor_msgs/CameraInfo`` the perception core reads."""

    width: int
    height: int
    k: Sequence[float]


#: Supported image encodings: name -> (numpy dtype, channels).
ENCODINGS = {
    'rgb8': (np.uint8, 3),
    'bgr8': (np.uint8, 3),
    'rgba8': (np.uint8, 4),
    'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1),
    'mono16': (np.uint16, 1),
    '16UC1': (np.uint16, 1),
    '32FC1': (np.float32, 1),
}


class ConversionError(ValueError):
    """A message cannot be turned into an array (bad encoding or size)."""


def image_to_array(msg: ImageLike) -> np.ndarray:
    """
    Unpack a ``sensor_msgs/Image``; colour comes back RGB(A), depth as HxW.

    Raises ConversionError for unsupported encodings and for buffers whose size
    does not match ``height``, ``width`` and ``step``.
    """
    if msg.encoding not in ENCODINGS:
        raise ConversionError(
            f'unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODINGS)}')
    dtype, channels = ENCODINGS[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = msg.width * channels * itemsize
    if msg.height == 0 or msg.width == 0:
        raise ConversionError('empty image (height or width is 0)')
    if msg.step < row_bytes or len(msg.data) < msg.step * msg.height:
        raise ConversionError(
            f'image buffer of {len(msg.data)} bytes (step {msg.step}) is too small for '
            f'{msg.width}x{msg.height} {msg.encoding}')
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8, count=msg.step * msg.height)
    rows = raw.reshape(msg.height, msg.step)[:, :row_bytes]
    order = '>' if msg.is_bigendian else '<'
    array = rows.copy().view(np.dtype(dtype).newbyteorder(order)).astype(dtype, copy=False)
    array = array.reshape(msg.height, msg.width, channels)
    if msg.encoding.startswith('bgr'):
        array = array[:, :, [2, 1, 0] + ([3] if channels == 4 else [])]
    return array[:, :, 0] if channels == 1 else array


def camera_info_to_matrix(msg: CameraInfoLike) -> np.ndarray:
    """Return the 3x3 intrinsic matrix of a ``CameraInfo``."""
    return np.asarray(msg.k, dtype=float).reshape(3, 3)
