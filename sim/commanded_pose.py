"""
The TCP target a controller holds, on which delta actions accumulate.

The simulator keeps one, and so does a controller that drives the simulator
over ROS (it knows what it commanded), so a delta action means the same on
both sides of DDS.
"""

import math
from typing import Iterable

import numpy as np

from .robot import quat_from_euler, quat_multiply, Workspace

#: The target may lead the measured TCP by at most this much (m), so a blocked arm
#: does not wind up.
MAX_LEAD = 0.03


class CommandedPose:
    """A workspace-clamped TCP target pose with bounded delta updates."""

    def __init__(self, workspace: Workspace = Workspace(), max_delta: float = 0.05,
                 max_rot_delta: float = 0.2):
        """Start with no target; call :meth:`set_target` at every episode start."""
        self.workspace = workspace
        self.max_delta = max_delta
        self.max_rot_delta = max_rot_delta
        self.position = np.zeros(3)
        self.orientation = np.array([0.0, 0.0, 0.0, 1.0])
        self.clamped = False

    def set_target(self, position: Iterable[float], orientation_xyzw: Iterable[float]) -> bool:
        """Validate, clamp and store a target; return whether it was clamped."""
        orn = np.asarray(orientation_xyzw, dtype=np.float64)
        norm = math.sqrt(orn @ orn) if orn.shape == (4,) else float('nan')
        if not math.isfinite(norm) or norm < 1e-6:
            raise ValueError(f'orientation must be a non-zero finite quaternion, got {orn}')
        pos = np.asarray(position, dtype=np.float64)
        if pos.shape != (3,) or not np.isfinite(pos).all():
            raise ValueError(f'position must be 3 finite values, got {pos}')
        self.position, self.clamped = self.workspace.clamp(pos)
        self.orientation = orn / norm
        return self.clamped

    def reference(self, measured_position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the pose a delta is added to: the target, at most MAX_LEAD from the TCP."""
        lead = self.position - measured_position
        dist = math.sqrt(lead @ lead)
        if dist > MAX_LEAD:
            return measured_position + lead * (MAX_LEAD / dist), self.orientation
        return self.position, self.orientation

    def apply_delta(self, delta: np.ndarray, measured_position: np.ndarray) -> bool:
        """Add ``[dx, dy, dz, droll, dpitch, dyaw]`` (clipped) to the reference; return clamped."""
        base, orn = self.reference(measured_position)
        step = np.minimum(np.maximum(delta[:3], -self.max_delta), self.max_delta)
        rpy = np.minimum(np.maximum(delta[3:6], -self.max_rot_delta), self.max_rot_delta)
        return self.set_target(base + step, quat_multiply(quat_from_euler(rpy), orn))
