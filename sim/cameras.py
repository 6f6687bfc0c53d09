"""
Pinhole RGB-D cameras rendered with PyBullet's headless tiny renderer.

Frames carry what a ROS camera driver publishes: colour, metric depth along the
optical axis (REP-118), intrinsics ``K`` and the pose of the camera OPTICAL
frame (x right, y down, z forward) in the world. The OpenGL view matrix is
derived from that same pose, so images and extrinsics cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Iterable, Optional

import numpy as np
import pybullet as pb

from .config import CameraSpec
from .robot import rotation_matrix

# Optical frame (x right, y down, z forward) to OpenGL camera frame (y up, z back).
OPTICAL_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])
RENDER_FLAGS = pb.ER_NO_SEGMENTATION_MASK


@dataclass
class CameraFrame:
    """One rendered RGB-D image with its calibration."""

    name: str
    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    T_world_camera: np.ndarray
    width: int
    height: int
    frame_id: str = field(default='')

    def __post_init__(self) -> None:
        """Name the optical frame after the camera unless told otherwise."""
        if not self.frame_id:
            self.frame_id = f'{self.name}_optical_frame'


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Return the 4x4 world pose of an optical frame at ``eye`` looking at ``target``."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, eye
    return pose


def intrinsics(spec: CameraSpec) -> np.ndarray:
    """Return the 3x3 pinhole matrix (pixel centres at integer coordinates)."""
    f = 0.5 * spec.height / math.tan(math.radians(spec.fov_deg) / 2)
    return np.array([[f, 0.0, (spec.width - 1) / 2],
                     [0.0, f, (spec.height - 1) / 2],
                     [0.0, 0.0, 1.0]])


class Camera:
    """Renders one ``CameraSpec``; wrist cameras follow a pose given at render time."""

    def __init__(self, spec: CameraSpec, client: int):
        """Precompute the projection and the nominal mount pose."""
        self.spec = spec
        self.client = client
        self.K = intrinsics(spec)
        self.projection = pb.computeProjectionMatrixFOV(
            spec.fov_deg, spec.width / spec.height, spec.near, spec.far)
        self.set_jitter(np.zeros(3), np.zeros(3))

    def set_jitter(self, eye_offset: np.ndarray, target_offset: np.ndarray) -> None:
        """Displace the camera's eye and target (mount frame) for this episode."""
        spec = self.spec
        eye = np.asarray(spec.eye, dtype=float) + eye_offset
        target = np.asarray(spec.target, dtype=float) + target_offset
        self.T_mount_camera = look_at(eye, target, np.asarray(spec.up, dtype=float))

    def pose(self, mount_pose: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
        """Return T_world_camera, composing the mount pose for wrist cameras."""
        if mount_pose is None:
            return self.T_mount_camera
        T_world_mount = np.eye(4)
        T_world_mount[:3, :3] = rotation_matrix(mount_pose[1])
        T_world_mount[:3, 3] = mount_pose[0]
        return T_world_mount @ self.T_mount_camera

    def capture_args(self, mount_pose: Optional[tuple[np.ndarray, np.ndarray]] = None,
                     light: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Return the keyword arguments of ``getCameraImage`` for the current pose."""
        view = np.linalg.inv(self.pose(mount_pose) @ OPTICAL_TO_GL).flatten(order='F')
        return dict(width=self.spec.width, height=self.spec.height,
                    viewMatrix=view.tolist(), projectionMatrix=self.projection, shadow=0,
                    renderer=pb.ER_TINY_RENDERER, flags=RENDER_FLAGS,
                    physicsClientId=self.client, **(light or {}))

    def render(self, mount_pose: Optional[tuple[np.ndarray, np.ndarray]] = None,
               light: Optional[dict[str, Any]] = None) -> CameraFrame:
        """Render colour and metric depth from the current scene."""
        spec = self.spec
        _, _, rgba, zbuf, _ = pb.getCameraImage(**self.capture_args(mount_pose, light))
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(spec.height, spec.width, 4)
        zbuf = np.asarray(zbuf, dtype=np.float32).reshape(spec.height, spec.width)
        depth = spec.far * spec.near / (spec.far - (spec.far - spec.near) * zbuf)
        return CameraFrame(spec.name, rgba[:, :, :3].copy(), depth.astype(np.float32),
                           self.K.copy(), self.pose(mount_pose).copy(), spec.width, spec.height)


def backproject(frame: CameraFrame, max_depth: Optional[float] = None) -> np.ndarray:
    """Return the Nx3 world points of every pixel (closer than ``max_depth`` if given)."""
    v, u = np.mgrid[0:frame.height, 0:frame.width]
    z = frame.depth.astype(np.float64)
    keep = np.isfinite(z) if max_depth is None else z < max_depth
    z, u, v = z[keep], u[keep], v[keep]
    K = frame.K
    points = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)
    R, t = frame.T_world_camera[:3, :3], frame.T_world_camera[:3, 3]
    return points @ R.T + t


class CameraScheduler:
    """Decide which views are due, so each view can render at its own rate."""

    def __init__(self, specs: Iterable[CameraSpec]):
        """Remember each view's rate; views without one are due at every step."""
        self.rates = {s.name: s.rate_hz for s in specs}
        self.reset()

    def reset(self) -> None:
        """Make every view due at the next query."""
        self.next_due = dict.fromkeys(self.rates, 0.0)

    def due(self, sim_time: float) -> list[str]:
        """Return the views due at ``sim_time`` and schedule their next render."""
        views = []
        for name, rate in self.rates.items():
            if rate is None:
                views.append(name)
            elif sim_time + 1e-9 >= self.next_due[name]:
                views.append(name)
                period = 1.0 / rate
                self.next_due[name] = (math.floor(sim_time / period + 1e-9) + 1) * period
        return views
