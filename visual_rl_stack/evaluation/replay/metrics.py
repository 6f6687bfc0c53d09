"""
The numbers of a replay evaluation, from arrays: ROS-free and unit-tested on hand cases.

Actions are in the simulator's layouts (``sim/scene.py``): delta
``[dx, dy, dz, rx, ry, rz, gripper]`` (rotation vector) or absolute
``[x, y, z, qx, qy, qz, qw, gripper]``; the gripper is an opening fraction.
"""

from typing import Optional, Sequence

import numpy as np
from visual_rl_stack.sim.robot import (quat_conjugate, quat_from_rotvec, quat_multiply,
                                       quat_to_rotvec)


def action_errors(predicted: np.ndarray, recorded: np.ndarray, mode: str
                  ) -> dict[str, np.ndarray]:
    """
    Return per-step translation (m), rotation (rad) and gripper (fraction) errors.

    Rows where either side has a NaN (a step without a command) are NaN.
    """
    predicted, recorded = np.asarray(predicted, float), np.asarray(recorded, float)
    if predicted.shape != recorded.shape:
        raise ValueError(f'action shapes differ: {predicted.shape} vs {recorded.shape}')
    translation = np.linalg.norm(predicted[:, :3] - recorded[:, :3], axis=1)
    if mode == 'delta':
        rotation = np.array([_rotvec_angle(p, r) for p, r in zip(predicted[:, 3:6],
                                                                 recorded[:, 3:6])])
    elif mode == 'absolute':
        rotation = np.array([_quat_angle(p, r) for p, r in zip(predicted[:, 3:7],
                                                               recorded[:, 3:7])])
    else:
        raise ValueError(f'unknown action mode {mode!r}; expected delta or absolute')
    gripper = np.abs(predicted[:, -1] - recorded[:, -1])
    return {'translation': translation, 'rotation': rotation, 'gripper': gripper}


def _rotvec_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Return the angle (rad) of the rotation taking rotation vector ``b`` to ``a``."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float('nan')
    return _quat_angle(quat_from_rotvec(a), quat_from_rotvec(b))


def _quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Return the angle (rad) between two xyzw orientations (NaN for a zero quaternion)."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or not (
            np.linalg.norm(a) > 0 and np.linalg.norm(b) > 0):
        return float('nan')
    relative = quat_multiply(a / np.linalg.norm(a), quat_conjugate(b / np.linalg.norm(b)))
    return float(np.linalg.norm(quat_to_rotvec(relative)))


def summary(values: Sequence[float]) -> dict[str, Optional[float]]:
    """Return mean, median, p95, min, max and count of the finite ``values`` (None: none)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return {'mean': None, 'median': None, 'p95': None, 'min': None, 'max': None, 'n': 0}
    return {'mean': float(finite.mean()), 'median': float(np.median(finite)),
            'p95': float(np.percentile(finite, 95)), 'min': float(finite.min()),
            'max': float(finite.max()), 'n': int(len(finite))}


def keypoint_displacements(answers: Sequence[np.ndarray]) -> np.ndarray:
    """
    Return how far (m) each keypoint moved between consecutive answers: (answers - 1) x K.

    ``answers`` are K x 3 keypoint sets in one frame, in the order they came;
    answers with another number of keypoints than the first are skipped.
    """
    sets = [np.asarray(a, float) for a in answers]
    sets = [a for a in sets if sets and a.shape == sets[0].shape]
    if len(sets) < 2:
        return np.zeros((0, sets[0].shape[0] if sets else 0))
    return np.stack([np.linalg.norm(b - a, axis=1) for a, b in zip(sets, sets[1:])])


def correlation(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Return the Pearson correlation of the finite pairs (None if either side is constant)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def first_step(flags: Sequence[bool]) -> Optional[int]:
    """Return the index of the first true flag (None if none is)."""
    hits = np.flatnonzero(np.asarray(flags, bool))
    return int(hits[0]) if len(hits) else None
