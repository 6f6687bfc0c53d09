"""
Lift keypoints from pixels to world points with the aligned metric depth of their view.

A keypoint's depth is read from a small window, not one pixel, so that a hole or
an object edge under the chosen pixel does not send the point to the far wall:
the window's median picks the surface, and a first-order fit over the readings
near that median gives the depth at the sub-pixel position on sloped surfaces.
A point that lands below the table or outside the workspace is rejected with
the reason, and a keypoint seen in several views is fused from the views that
agree. The waypoints come out in :data:`WAYPOINT_ORDER`; the pre- and
post-contact points a reply leaves out are derived above the grasp and target.
"""

from dataclasses import dataclass, field
import math
from typing import Iterable, Mapping, Optional

import numpy as np
from visual_rl_stack.sim.cameras import CameraFrame
from visual_rl_stack.sim.robot import Workspace
from visual_rl_stack.sim.scene import TABLE_CENTRE, TABLE_HALF

from .affordance import Keypoint, REQUIRED_KEYPOINTS, WAYPOINT_ORDER

#: Height of the simulator's table top in the world frame (the robot base stands on it).
TABLE_TOP_Z = TABLE_CENTRE[2] + TABLE_HALF[2]
_WORKSPACE = Workspace()
#: The waypoint each approach waypoint hangs above when a reply does not propose it.
DERIVED_FROM = {'pre_contact': 'grasp', 'post_contact': 'target'}


@dataclass(frozen=True)
class Tabletop:
    """Where scene points may lie: over the table top, inside the robot's workspace box."""

    table_z: float = TABLE_TOP_Z
    lo: tuple[float, float] = _WORKSPACE.lo[:2]
    hi: tuple[float, float] = _WORKSPACE.hi[:2]
    max_z: float = _WORKSPACE.hi[2]

    def __post_init__(self) -> None:
        """Reject empty boxes."""
        if not (self.lo[0] < self.hi[0] and self.lo[1] < self.hi[1] and self.table_z < self.max_z):
            raise ValueError(f'empty tabletop box: lo {self.lo}, hi {self.hi}, '
                             f'table_z {self.table_z}, max_z {self.max_z}')

    def inside_xy(self, points: np.ndarray) -> np.ndarray:
        """Return which of the ``...x3`` points lie over the workspace (x and y only)."""
        x, y = points[..., 0], points[..., 1]
        return (x >= self.lo[0]) & (x <= self.hi[0]) & (y >= self.lo[1]) & (y <= self.hi[1])


@dataclass(frozen=True)
class LiftSettings:
    """
    How pixels become world points.

    ``window`` is the half size of the depth window (2: 5x5 pixels), of which at
    least ``min_valid`` must have a reading. Readings within ``depth_tolerance``
    of the window's median count as the surface. Points may lie ``below_table``
    under the table top (depth noise, flat markers). Views of one keypoint agree
    when within ``fusion_tolerance`` of each other. Approach waypoints not proposed
    are placed ``approach_height`` above the grasp and target.
    """

    tabletop: Tabletop = field(default_factory=Tabletop)
    window: int = 2
    min_valid: float = 0.5
    depth_tolerance: float = 0.01
    below_table: float = 0.01
    fusion_tolerance: float = 0.03
    approach_height: float = 0.10

    def __post_init__(self) -> None:
        """Reject settings that cannot lift anything."""
        if self.window < 0 or not 0.0 < self.min_valid <= 1.0:
            raise ValueError('need window >= 0 and 0 < min_valid <= 1, '
                             f'got {self.window} and {self.min_valid}')
        if min(self.depth_tolerance, self.below_table, self.fusion_tolerance) < 0:
            raise ValueError('tolerances must be >= 0')


@dataclass(frozen=True)
class LiftResult:
    """
    World points per keypoint name, why each keypoint was kept or rejected, and the waypoints.

    ``waypoints`` is ``len(WAYPOINT_ORDER) x 3`` in that order, or None when a
    required keypoint could not be lifted (``diagnostic`` says which and why).
    """

    points: Mapping[str, np.ndarray]
    diagnostics: Mapping[str, str]
    waypoints: Optional[np.ndarray]
    diagnostic: str


def camera_rays(frame: CameraFrame, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Return optical-frame rays with unit z through pixels ``(u, v)`` (``...x3``)."""
    pixels = np.stack([u, v, np.ones_like(u)], axis=-1).astype(np.float64)
    return pixels @ np.linalg.inv(frame.K).T


def to_world(frame: CameraFrame, camera_points: np.ndarray) -> np.ndarray:
    """Map ``...x3`` optical-frame points into the world with the frame's pose."""
    R, t = frame.T_world_camera[:3, :3], frame.T_world_camera[:3, 3]
    return camera_points @ R.T + t


def world_points(frame: CameraFrame) -> np.ndarray:
    """Return the ``HxWx3`` world point of every pixel (NaN where the depth has no reading)."""
    v, u = np.mgrid[0:frame.height, 0:frame.width]
    depth = frame.depth.astype(np.float64)
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    return to_world(frame, camera_rays(frame, u, v) * depth[..., None])


def window_depth(frame: CameraFrame, u: float, v: float,
                 settings: LiftSettings) -> tuple[Optional[float], str]:
    """Return the surface depth at sub-pixel ``(u, v)`` and '' or (None, why not)."""
    r = settings.window
    cu, cv = int(round(u)), int(round(v))
    v0, v1 = max(cv - r, 0), min(cv + r + 1, frame.height)
    u0, u1 = max(cu - r, 0), min(cu + r + 1, frame.width)
    patch = frame.depth[v0:v1, u0:u1].astype(np.float64)
    vv, uu = np.mgrid[v0:v1, u0:u1]
    valid = np.isfinite(patch) & (patch > 0)
    needed = math.ceil(settings.min_valid * patch.size)
    if valid.sum() < needed:
        return None, (f'depth hole: {int(valid.sum())} of {patch.size} pixels around '
                      f'({u:.1f}, {v:.1f}) have a reading, need {needed}')
    readings = patch[valid]
    median = float(np.percentile(readings, 50, method='lower'))
    surface = valid & (np.abs(patch - median) <= settings.depth_tolerance)
    design = np.stack([uu[surface], vv[surface], np.ones(int(surface.sum()))], axis=1)
    coeffs, _, rank, _ = np.linalg.lstsq(design, patch[surface], rcond=None)
    if rank < 3:
        return median, ''
    return float(coeffs @ (u, v, 1.0)), ''


def lift_pixel(frame: CameraFrame, u: float, v: float,
               settings: LiftSettings = LiftSettings()) -> tuple[Optional[np.ndarray], str]:
    """Return the world point under pixel ``(u, v)`` and '', or None and why it is rejected."""
    if not (math.isfinite(u) and math.isfinite(v)):
        return None, f'pixel ({u}, {v}) is not finite'
    if not (-0.5 <= u <= frame.width - 0.5 and -0.5 <= v <= frame.height - 0.5):
        return None, f'pixel ({u:.1f}, {v:.1f}) is outside the {frame.width}x{frame.height} image'
    depth, why = window_depth(frame, u, v, settings)
    if depth is None:
        return None, why
    point = to_world(frame, camera_rays(frame, np.float64(u), np.float64(v)) * depth)
    table = settings.tabletop
    if point[2] < table.table_z - settings.below_table:
        return None, f'below the table (z = {point[2]:.3f} m)'
    if point[2] > table.max_z or not table.inside_xy(point):
        return None, f'outside the workspace ({_fmt(point)})'
    return point, ''


def fuse(points: Mapping[str, np.ndarray],
         tolerance: float) -> tuple[Optional[np.ndarray], str]:
    """
    Return the median of the largest set of views within ``tolerance`` of each other.

    Views outside that set are named in the message; two views that disagree
    leave no majority, so the keypoint is rejected rather than averaged.
    """
    views = list(points)
    stacked = np.array([points[v] for v in views])
    near = np.linalg.norm(stacked[:, None] - stacked[None], axis=2) <= tolerance
    best = int(np.argmax(near.sum(axis=1)))
    agree = near[best]
    if len(views) > 1 and agree.sum() < 2:
        return None, f'views {", ".join(views)} disagree by more than {tolerance:.3f} m'
    fused = np.median(stacked[agree], axis=0)
    kept = [v for v, a in zip(views, agree) if a]
    dropped = [f'{v} {np.linalg.norm(points[v] - fused):.3f} m off'
               for v, a in zip(views, agree) if not a]
    outliers = f' (outlier {"; ".join(dropped)})' if dropped else ''
    return fused, 'from ' + ', '.join(kept) + outliers


def lift_keypoints(keypoints: Iterable[Keypoint], frames: Mapping[str, CameraFrame],
                   settings: LiftSettings = LiftSettings()) -> LiftResult:
    """Lift and fuse keypoints (any views, names may repeat) and build the waypoints."""
    lifted: dict[str, dict[str, np.ndarray]] = {}
    reasons: dict[str, list[str]] = {}
    for kp in keypoints:
        lifted.setdefault(kp.name, {})
        reasons.setdefault(kp.name, [])
        frame = frames.get(kp.view)
        if frame is None:
            reasons[kp.name].append(f'{kp.view}: no frame for this view')
            continue
        point, why = lift_pixel(frame, kp.u, kp.v, settings)
        if point is None:
            reasons[kp.name].append(f'{kp.view}: {why}')
            continue
        default = settings.approach_height if kp.name in DERIVED_FROM else 0.0
        point[2] += default if kp.height is None else kp.height
        lifted[kp.name][kp.view] = point
    points: dict[str, np.ndarray] = {}
    diagnostics: dict[str, str] = {}
    for name, views in lifted.items():
        rejected = '; '.join(reasons[name])
        fused, how = fuse(views, settings.fusion_tolerance) if views else (None, '')
        if fused is None:
            diagnostics[name] = 'rejected: ' + '; '.join(filter(None, (how, rejected)))
        else:
            points[name] = fused
            diagnostics[name] = 'ok ' + how + (f'; rejected {rejected}' if rejected else '')
    waypoints, diagnostic = _waypoints(points, diagnostics, settings.approach_height)
    return LiftResult(points, diagnostics, waypoints, diagnostic)


def _waypoints(points: dict[str, np.ndarray], diagnostics: dict[str, str],
               height: float) -> tuple[Optional[np.ndarray], str]:
    """Derive missing approach waypoints (noting it) and stack all in WAYPOINT_ORDER."""
    missing = [n for n in REQUIRED_KEYPOINTS if n not in points]
    if missing:
        why = '; '.join(f'{n} {diagnostics.get(n, "not proposed")}' for n in missing)
        return None, f'no waypoints: {why}'
    for name, base in DERIVED_FROM.items():
        if name not in points:
            before = diagnostics.get(name)
            points[name] = points[base] + (0.0, 0.0, height)
            diagnostics[name] = f'derived: {base} raised {height:.3f} m' + (
                f' ({before})' if before else '')
    return np.array([points[n] for n in WAYPOINT_ORDER]), 'ok'


def _fmt(point: np.ndarray) -> str:
    """Format a world point in metres for messages."""
    return 'x {:.3f}, y {:.3f}, z {:.3f} m'.format(*point)
