"""
Franka Panda arm and gripper in PyBullet.

The arm is driven in task space: a tool-centre-point (TCP) pose goes through
null-space inverse kinematics (joint limits, rest pose) into joint position
motors with the URDF force limits. The TCP is ``panda_grasptarget``, the point
between the fingertips, so grasp targets are object centres, not flange poses.
The two fingers are one gripper: both follow the same commanded opening width
and a gear constraint keeps them symmetric (a software mimic joint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pybullet as pb
import pybullet_data

URDF = 'franka_panda/panda.urdf'
ARM_JOINTS = tuple(f'panda_joint{i}' for i in range(1, 8))
FINGER_JOINTS = ('panda_finger_joint1', 'panda_finger_joint2')
TCP_LINK = 'panda_grasptarget'
HAND_LINK = 'panda_hand'
MAX_GRIPPER_WIDTH = 0.08
# Elbow up, hand pointing down, fingers opening along world y.
HOME_JOINTS = (0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785)
GRIPPER_FORCE = 40.0
FINGER_FRICTION = 1.5
# Torsional friction at the finger pads keeps grasped objects from pivoting.
FINGER_SPINNING_FRICTION = 0.1
# Orientation (xyzw) with the TCP z axis pointing down at the table.
DOWN = (1.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Workspace:
    """
    Axis-aligned box (metres, world frame) that TCP targets are clamped into.

    The defaults cover the table area in front of the robot base (which stands
    at the origin on the table top, z = 0), from just above the table surface to
    about half a metre above it.
    """

    lo: tuple[float, float, float] = (0.25, -0.4, 0.003)
    hi: tuple[float, float, float] = (0.8, 0.4, 0.55)

    def __post_init__(self) -> None:
        """Keep array copies of the bounds so that clamping converts nothing per call."""
        object.__setattr__(self, '_lo', np.array(self.lo, dtype=np.float64))
        object.__setattr__(self, '_hi', np.array(self.hi, dtype=np.float64))

    def clamp(self, position: np.ndarray) -> tuple[np.ndarray, bool]:
        """Return the position clipped into the box and whether it was clipped."""
        clipped = np.minimum(np.maximum(position, self._lo), self._hi)
        return clipped, bool((clipped != position).any())


@dataclass(frozen=True)
class RobotState:
    """Proprioception of the arm at one instant."""

    joint_names: tuple[str, ...]
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    ee_position: np.ndarray
    ee_orientation: np.ndarray
    gripper_width: float


class PandaRobot:
    """A fixed-base Panda in one PyBullet client, commanded by TCP pose."""

    def __init__(self, client: int, base_position: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        """Load the URDF and cache joint indices, limits and motor forces."""
        self.client = client
        self.uid = pb.loadURDF(
            f'{pybullet_data.getDataPath()}/{URDF}', base_position, useFixedBase=True,
            flags=pb.URDF_ENABLE_CACHED_GRAPHICS_SHAPES, physicsClientId=client)
        by_name = {}
        for j in range(pb.getNumJoints(self.uid, physicsClientId=client)):
            info = pb.getJointInfo(self.uid, j, physicsClientId=client)
            by_name[info[1].decode()] = info
            by_name[info[12].decode()] = info
        self.joint_names = ARM_JOINTS + FINGER_JOINTS
        self.joint_indices = [by_name[n][0] for n in self.joint_names]
        self.tcp_link = by_name[TCP_LINK][0]
        self.hand_link = by_name[HAND_LINK][0]
        self.finger_links = [by_name[n][0] for n in FINGER_JOINTS]
        self.lower = [by_name[n][8] for n in self.joint_names]
        self.upper = [by_name[n][9] for n in self.joint_names]
        self.ranges = [u - lo for lo, u in zip(self.lower, self.upper)]
        self.forces = [by_name[n][10] for n in ARM_JOINTS] + [GRIPPER_FORCE] * 2
        self.rest = list(HOME_JOINTS) + [MAX_GRIPPER_WIDTH / 2] * 2
        self._couple_fingers()
        for link in self.finger_links:
            pb.changeDynamics(self.uid, link, lateralFriction=FINGER_FRICTION,
                              spinningFriction=FINGER_SPINNING_FRICTION, physicsClientId=client)
        self._cache: Optional[RobotState] = None

    def _couple_fingers(self) -> None:
        """
        Tie the fingers with a gear constraint (the URDF mimic joint PyBullet ignores).

        Without it the two position motors leave the finger pair free to slide
        sideways together, so a grasped object drifts along the opening axis.
        """
        left, right = self.finger_links
        gear = pb.createConstraint(self.uid, left, self.uid, right, pb.JOINT_GEAR, (1, 0, 0),
                                   (0, 0, 0), (0, 0, 0), physicsClientId=self.client)
        pb.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=2 * GRIPPER_FORCE,
                            physicsClientId=self.client)

    def reset(self) -> None:
        """Put the arm in the home posture, open the gripper and hold it there."""
        for index, q in zip(self.joint_indices, self.rest):
            pb.resetJointState(self.uid, index, q, 0.0, physicsClientId=self.client)
        self._drive(self.rest)

    def invalidate(self) -> None:
        """Forget the cached state; call after the physics advanced."""
        self._cache = None

    def state(self) -> RobotState:
        """Return joint and TCP state, read from PyBullet once per physics change."""
        if self._cache is None:
            joints = pb.getJointStates(self.uid, self.joint_indices, physicsClientId=self.client)
            tcp = pb.getLinkState(self.uid, self.tcp_link, computeForwardKinematics=1,
                                  physicsClientId=self.client)
            q = np.array([s[0] for s in joints])
            self._cache = RobotState(
                joint_names=self.joint_names,
                joint_positions=q,
                joint_velocities=np.array([s[1] for s in joints]),
                ee_position=np.array(tcp[4]),
                ee_orientation=np.array(tcp[5]),
                gripper_width=float(q[7] + q[8]),
            )
        return self._cache

    def command(self, position: np.ndarray, orientation: np.ndarray, width: float) -> None:
        """Drive the TCP towards a pose and the fingers towards an opening width."""
        q = pb.calculateInverseKinematics(
            self.uid, self.tcp_link, position, orientation,
            lowerLimits=self.lower, upperLimits=self.upper, jointRanges=self.ranges,
            restPoses=self.rest, physicsClientId=self.client)
        half = 0.5 * min(max(float(width), 0.0), MAX_GRIPPER_WIDTH)
        self._drive(list(q[:7]) + [half, half])

    def _drive(self, targets: list[float]) -> None:
        """Send joint position targets to the motors."""
        pb.setJointMotorControlArray(
            self.uid, self.joint_indices, pb.POSITION_CONTROL, targetPositions=targets,
            forces=self.forces, physicsClientId=self.client)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the Hamilton product a * b of two xyzw quaternions."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Return the inverse of a unit xyzw quaternion."""
    return np.array([-q[0], -q[1], -q[2], q[3]])


def quat_from_rotvec(v: np.ndarray) -> np.ndarray:
    """Return the xyzw quaternion of a rotation vector (axis times angle)."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    s = np.sin(angle / 2) / angle
    return np.array([v[0] * s, v[1] * s, v[2] * s, np.cos(angle / 2)])


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Return the rotation vector of an xyzw quaternion (shortest rotation)."""
    q = q if q[3] >= 0 else -q
    s = float(np.linalg.norm(q[:3]))
    if s < 1e-12:
        return np.zeros(3)
    return q[:3] * (2 * np.arctan2(s, q[3]) / s)


def quat_from_euler(rpy: np.ndarray) -> np.ndarray:
    """Return the xyzw quaternion of fixed-axis roll, pitch, yaw (PyBullet convention)."""
    return np.array(pb.getQuaternionFromEuler(rpy))


def quat_to_euler(q: np.ndarray) -> np.ndarray:
    """Return roll, pitch, yaw of an xyzw quaternion (PyBullet convention)."""
    return np.array(pb.getEulerFromQuaternion(q))


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    """Return the 3x3 rotation matrix of an xyzw quaternion."""
    return np.array(pb.getMatrixFromQuaternion(q)).reshape(3, 3)


def yaw_of(q: np.ndarray) -> float:
    """Return the heading (rotation about world z) of an xyzw quaternion."""
    x, y, z, w = q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
