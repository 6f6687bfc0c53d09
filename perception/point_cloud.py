"""
Fuse the cameras' depth into one coloured world point cloud (the camera node publishes it).

Points are backprojected per view, cropped to the workspace, voxel-downsampled
and filtered for outliers with open3d; packing the result as a PointCloud2 is
:func:`visual_rl_stack.ros.msg_conversions.to_point_cloud2`.
"""

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import open3d as o3d

from .preprocess import ViewFrame


@dataclass(frozen=True)
class CloudSettings:
    """How views are fused: workspace box (world frame), voxel size, outlier filter."""

    workspace_min: tuple[float, float, float] = (0.2, -0.45, -0.02)
    workspace_max: tuple[float, float, float] = (0.9, 0.45, 0.5)
    voxel_size: float = 0.005
    outlier_neighbors: int = 0
    outlier_std_ratio: float = 2.0

    def __post_init__(self) -> None:
        """Reject boxes that are empty or not 3D and non-positive voxel sizes."""
        if len(self.workspace_min) != 3 or len(self.workspace_max) != 3:
            raise ValueError('workspace_min and workspace_max need 3 values (x, y, z)')
        if not all(lo < hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f'workspace_min {list(self.workspace_min)} must be below '
                             f'workspace_max {list(self.workspace_max)} on every axis')
        if self.voxel_size < 0:
            raise ValueError(f'voxel_size must be >= 0 (0 = off), got {self.voxel_size}')


def backproject(depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray,
                rgb: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """
    Turn a depth image (metres, optical frame) into world points and their colours.

    Pixels without a reading (NaN, inf, <= 0) are skipped. Returns (N x 3
    float64 points, N x 3 uint8 colours; grey when ``rgb`` is None).
    """
    v, u = np.indices(depth.shape)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(depth) & (depth > 0)
    z = depth[valid].astype(float)
    x = (u[valid] - K[0, 2] - K[0, 1] * (v[valid] - K[1, 2]) / K[1, 1]) * z / K[0, 0]
    y = (v[valid] - K[1, 2]) * z / K[1, 1]
    camera_points = np.stack([x, y, z], axis=1)
    points = camera_points @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]
    colors = rgb[valid] if rgb is not None else np.full((len(z), 3), 128, np.uint8)
    return points, colors.astype(np.uint8)


def crop_to_box(points: np.ndarray, colors: np.ndarray, low: Sequence[float],
                high: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points inside the axis-aligned box [low, high] (bounds included)."""
    inside = np.all((points >= np.asarray(low)) & (points <= np.asarray(high)), axis=1)
    return points[inside], colors[inside]


def voxel_downsample(points: np.ndarray, colors: np.ndarray,
                     voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """
    Average points and colours per voxel of edge ``voxel_size``.

    Same grid as open3d's ``voxel_down_sample`` (anchored half a voxel below
    the cloud's minimum), but in numpy, whose sort and arithmetic release the
    GIL: open3d holds it for the whole call, which stalls every other thread
    of the node (the tiled image path) for milliseconds per cloud.
    """
    if voxel_size <= 0 or len(points) == 0:
        return points, colors
    points = np.asarray(points, dtype=float)
    origin = points.min(axis=0) - 0.5 * voxel_size
    cells = np.floor((points - origin) / voxel_size).astype(np.int64)
    dims = cells.max(axis=0) + 1
    if int(dims[0]) * int(dims[1]) * int(dims[2]) < 2 ** 62:
        _, inverse, counts = np.unique(np.ravel_multi_index(tuple(cells.T), tuple(dims)),
                                       return_inverse=True, return_counts=True)
    else:  # a cloud too wide for one int64 key per voxel
        _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    mean_points = np.stack([np.bincount(inverse, points[:, axis], len(counts))
                            for axis in range(3)], axis=1) / counts[:, None]
    mean_colors = np.stack([np.bincount(inverse, colors[:, channel], len(counts))
                            for channel in range(3)], axis=1) / counts[:, None]
    return mean_points, np.clip(np.round(mean_colors), 0, 255).astype(np.uint8)


def remove_outliers(points: np.ndarray, colors: np.ndarray, neighbors: int,
                    std_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop points far from their ``neighbors`` nearest neighbours (open3d statistical filter)."""
    if neighbors <= 0 or len(points) <= neighbors:
        return points, colors
    cloud, _ = _to_open3d(points, colors).remove_statistical_outlier(neighbors, std_ratio)
    return _from_open3d(cloud)


def fuse_views(views: Sequence[tuple[ViewFrame, np.ndarray]],
               settings: CloudSettings) -> tuple[np.ndarray, np.ndarray]:
    """Back-project (frame, world_from_camera) views, crop, downsample and filter."""
    parts = [crop_to_box(*backproject(frame.depth, frame.K, pose, frame.rgb),
                         settings.workspace_min, settings.workspace_max)
             for frame, pose in views]
    points = np.concatenate([p for p, _ in parts]) if parts else np.zeros((0, 3))
    colors = np.concatenate([c for _, c in parts]) if parts else np.zeros((0, 3), np.uint8)
    points, colors = voxel_downsample(points, colors, settings.voxel_size)
    return remove_outliers(points, colors, settings.outlier_neighbors, settings.outlier_std_ratio)


def _to_open3d(points: np.ndarray, colors: np.ndarray) -> o3d.geometry.PointCloud:
    """Wrap numpy points and uint8 colours in an open3d cloud."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(colors.astype(np.float64) / 255.0)
    return cloud


def _from_open3d(cloud: o3d.geometry.PointCloud) -> tuple[np.ndarray, np.ndarray]:
    """Return an open3d cloud's points and colours (uint8)."""
    colors = np.clip(np.round(np.asarray(cloud.colors) * 255.0), 0, 255).astype(np.uint8)
    return np.asarray(cloud.points), colors
