"""
Task interface and the body-building helpers every task shares.

A task owns the objects it adds to the scene, randomises them from the episode
RNG, and judges success from privileged (simulator) state. Rewards are sparse:
1.0 on success, else 0.0; dense shaping comes from elsewhere in the stack.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence, Union

import numpy as np
import pybullet as pb
from visual_rl_stack.sim.robot import PandaRobot, RobotState
from visual_rl_stack.sim.scene_objects import SceneObject

# Where task objects are spawned (table top, in front of the robot).
SPAWN_LO = np.array([0.42, -0.18])
SPAWN_HI = np.array([0.65, 0.18])
OBJECT_FRICTION = 1.0
# Combined with the finger pads' (product) this resists pivoting in the grasp.
OBJECT_SPINNING_FRICTION = 0.1
Color = tuple[float, float, float, float]
RED = (0.85, 0.15, 0.15, 1.0)
GREEN = (0.2, 0.7, 0.25, 1.0)
BLUE = (0.2, 0.35, 0.85, 1.0)
YELLOW = (0.9, 0.8, 0.2, 1.0)


class SimHandle(Protocol):
    """What a task needs from the simulator that hosts it."""

    client: int
    robot: PandaRobot


class Task:
    """Base class of all tabletop tasks."""

    name = 'task'
    max_episode_steps = 100
    #: The keys of :meth:`privileged_state`, in order (what tells a task by its /task/state).
    state_fields: tuple[str, ...] = ()

    def __init__(self) -> None:
        """Start without a simulator; ``build`` attaches one."""
        self.client = -1
        self.robot: Optional[PandaRobot] = None
        self.bodies: list[int] = []
        self._poses: dict[int, tuple] = {}

    def instruction(self) -> str:
        """Return the English instruction a language-conditioned policy receives."""
        raise NotImplementedError

    def build(self, sim: SimHandle) -> None:
        """Add this task's bodies to the simulator (once per scene build)."""
        self.client = sim.client
        self.robot = sim.robot
        self.bodies = []
        self._poses = {}
        self._build()

    def invalidate(self) -> None:
        """Forget cached body poses; the simulator calls this after the physics advanced."""
        self._poses = {}

    def _build(self) -> None:
        """Create the task's bodies; subclasses append the movable ones to ``bodies``."""
        raise NotImplementedError

    def reset(self, rng: np.random.Generator) -> None:
        """Place the task's bodies at randomised initial poses drawn from ``rng``."""
        raise NotImplementedError

    def success(self) -> bool:
        """Return whether the task is solved in the current state."""
        raise NotImplementedError

    def reward(self) -> float:
        """Return the sparse reward: 1.0 when solved, else 0.0."""
        return 1.0 if self.success() else 0.0

    def goal_distance(self) -> float:
        """
        Return how far (m) the scene is from success, for shaped rewards.

        Only tasks with a natural distance define it (see
        :func:`has_goal_distance`); the others raise NotImplementedError.
        """
        raise NotImplementedError(f'task {self.name!r} defines no goal distance')

    def tilt(self) -> float:
        """
        Return how far (rad) the object that must stay upright leans from vertical.

        Only tasks whose object is lost once it tips over define it (see
        :func:`has_tilt`); the others raise NotImplementedError.
        """
        raise NotImplementedError(f'task {self.name!r} defines no tilt')

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Return object poses and goals (fixed keys and shapes per task)."""
        raise NotImplementedError

    def scene_objects(self, state: Optional[dict[str, np.ndarray]] = None) -> list[SceneObject]:
        """
        Return the objects an instruction of this task names, by their names.

        From ``state`` (a :meth:`privileged_state` dict, e.g. one recorded in a
        bag) when given, else from the simulator now.
        """
        raise NotImplementedError

    def pose(self, uid: int) -> tuple[np.ndarray, np.ndarray]:
        """
        Return world position and xyzw orientation of a body (fresh arrays).

        PyBullet is asked once per body between physics changes (success checks
        and the observation read the same poses); ``invalidate`` forgets them.
        """
        cached = self._poses.get(uid)
        if cached is None:
            cached = self._poses[uid] = pb.getBasePositionAndOrientation(
                uid, physicsClientId=self.client)
        return np.array(cached[0]), np.array(cached[1])

    def place(self, uid: int, position: Sequence[float], yaw: float = 0.0) -> None:
        """Teleport a body to a pose with the given heading and zero velocity."""
        self._poses.pop(uid, None)
        orn = pb.getQuaternionFromEuler((0.0, 0.0, yaw))
        pb.resetBasePositionAndOrientation(uid, position, orn, physicsClientId=self.client)
        pb.resetBaseVelocity(uid, (0, 0, 0), (0, 0, 0), physicsClientId=self.client)

    def touching_robot(self, uid: int) -> bool:
        """Return whether the robot is in contact with a body."""
        assert self.robot is not None
        return bool(pb.getContactPoints(self.robot.uid, uid, physicsClientId=self.client))

    def robot_state(self) -> RobotState:
        """Return the robot's proprioception (for tasks judged on the TCP)."""
        assert self.robot is not None
        return self.robot.state()

    def box(self, half: Sequence[float], color: Color, mass: float) -> int:
        """Create a dynamic box with realistic contact parameters."""
        return create_box(self.client, half, color, mass)


def _overrides(task: Union[Task, type], method: str) -> bool:
    """Return whether ``task`` (instance or class) overrides an optional :class:`Task` method."""
    cls = task if isinstance(task, type) else type(task)
    return getattr(cls, method) is not getattr(Task, method)


def has_goal_distance(task: Union[Task, type]) -> bool:
    """Return whether ``task`` (instance or class) defines :meth:`Task.goal_distance`."""
    return _overrides(task, 'goal_distance')


def has_tilt(task: Union[Task, type]) -> bool:
    """Return whether ``task`` (instance or class) defines :meth:`Task.tilt`."""
    return _overrides(task, 'tilt')


def tilt_of(orientation: Sequence[float]) -> float:
    """Return the angle (rad) between a body's z axis, given its xyzw orientation, and vertical."""
    z_axis_up = pb.getMatrixFromQuaternion(orientation)[8]
    return float(np.arccos(np.clip(z_axis_up, -1.0, 1.0)))


def create_box(client: int, half: Sequence[float], color: Color, mass: float,
               position: Sequence[float] = (0.0, 0.0, -1.0)) -> int:
    """
    Create a box body; ``mass=0`` makes it static.

    Sleeping is disabled: a body's sleep state is not part of a saved state, so
    it would make episodes depend on what happened before the reset.
    """
    col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=client)
    vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=color,
                               physicsClientId=client)
    uid = pb.createMultiBody(mass, col, vis, position, physicsClientId=client)
    pb.changeDynamics(uid, -1, lateralFriction=OBJECT_FRICTION,
                      spinningFriction=OBJECT_SPINNING_FRICTION,
                      rollingFriction=0.0, restitution=0.0,
                      activationState=pb.ACTIVATION_STATE_DISABLE_SLEEPING,
                      physicsClientId=client)
    return uid


def create_marker(client: int, radius: float, color: Color, length: float = 0.0) -> int:
    """Create a visual-only sphere (``length=0``) or flat disc that nothing collides with."""
    if length > 0:
        vis = pb.createVisualShape(pb.GEOM_CYLINDER, radius=radius, length=length,
                                   rgbaColor=color, physicsClientId=client)
    else:
        vis = pb.createVisualShape(pb.GEOM_SPHERE, radius=radius, rgbaColor=color,
                                   physicsClientId=client)
    return pb.createMultiBody(0, -1, vis, (0.0, 0.0, -1.0), physicsClientId=client)


def sample_positions(rng: np.random.Generator, count: int, min_dist: float,
                     lo: np.ndarray = SPAWN_LO, hi: np.ndarray = SPAWN_HI) -> list[np.ndarray]:
    """Draw ``count`` table positions (xy) at least ``min_dist`` apart."""
    while True:
        points = [rng.uniform(lo, hi) for _ in range(count)]
        if all(np.linalg.norm(a - b) >= min_dist
               for i, a in enumerate(points) for b in points[i + 1:]):
            return points
