"""
Camera frames for the affordance query, from camera messages or rendered from a simulator.

The query lifts pixels with the view's aligned depth, intrinsics and pose, so
a frame is the full-resolution :class:`CameraFrame` the simulator renders,
whether it came over ROS (node, recorded bags) or from a live simulator
without cameras (the residual RL workers render only at episode start).
"""

from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
from visual_rl_stack.core.image_buffers import camera_info_to_matrix
from visual_rl_stack.perception.preprocess import decode_color, decode_depth, FrameRejected
from visual_rl_stack.sim.cameras import Camera, CameraFrame
from visual_rl_stack.sim.config import default_cameras
from visual_rl_stack.sim.scene import TabletopSim


def frame_from_messages(view: str, color: Any, depth: Any, info: Any,
                        T_world_camera: np.ndarray,
                        max_invalid_depth_fraction: float = 0.5) -> CameraFrame:
    """
    Check and unpack one view's colour, depth and CameraInfo messages into a frame.

    Raises :class:`FrameRejected` naming the check (encoding, size, depth
    without readings, intrinsics, non-finite pose).
    """
    K = camera_info_to_matrix(info)
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise FrameRejected(view, 'camera_info', 'intrinsics',
                            f'focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}')
    T = np.asarray(T_world_camera, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise FrameRejected(view, 'pose', 'pose', 'camera pose is not a finite 4x4 transform')
    rgb = decode_color(view, color, info)
    metres = decode_depth(view, depth, info, max_invalid_depth_fraction)
    return CameraFrame(view, np.ascontiguousarray(rgb), metres, K, T, int(info.width),
                       int(info.height), frame_id=color.header.frame_id)


def render_views(sim: TabletopSim, views: Sequence[str], width: int = 128,
                 height: int = 128) -> dict[str, CameraFrame]:
    """
    Render the default cameras ``views`` at ``width`` x ``height`` from ``sim``'s scene.

    The simulator need not have cameras of its own: these render through its
    PyBullet client, with its episode's lighting, only when called.
    """
    specs = {spec.name: spec for spec in default_cameras()}
    unknown = [v for v in views if v not in specs]
    if unknown:
        raise ValueError(f'unknown camera views {unknown}; known: {list(specs)}')
    frames = {}
    state = sim.robot_state()
    for view in views:
        spec = replace(specs[view], width=width, height=height)
        mount = (state.ee_position, state.ee_orientation) if spec.mount == 'wrist' else None
        frames[view] = Camera(spec, sim.client).render(mount, sim.randomizer.light)
    return frames


def check_views(frames: Mapping[str, CameraFrame], views: Sequence[str]) -> list[str]:
    """Return the wanted views that have no frame."""
    return [view for view in views if view not in frames]
