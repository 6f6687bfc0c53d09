"""Peg insertion: a 30 mm square peg into a 32 mm square hole (2 mm total clearance)."""

from typing import Optional

import numpy as np
import pybullet as pb

from visual_rl_stack.sim.scene_objects import SceneObject

from .base import OBJECT_FRICTION, RED, sample_positions, Task, tilt_of, YELLOW

PEG_HALF = 0.015
PEG_HALF_HEIGHT = 0.04
PEG_MASS = 0.08
HOLE_HALF = 0.016
WALL_THICKNESS = 0.02
WALL_HEIGHT = 0.04
INSERT_DEPTH = 0.02
CENTER_TOLERANCE = 0.004


class PegInsertTask(Task):
    """Insert the peg at least 2 cm deep into the fixed square hole."""

    name = 'peg_insert'
    max_episode_steps = 150
    state_fields = ('peg_position', 'peg_orientation', 'hole_position', 'hole_orientation')

    def instruction(self) -> str:
        """Describe the goal."""
        return 'insert the red peg into the square hole'

    def _build(self) -> None:
        """Create the peg and the static four-wall socket around the hole."""
        self.peg = self.box([PEG_HALF, PEG_HALF, PEG_HALF_HEIGHT], RED, PEG_MASS)
        self.socket = self._socket()
        self.bodies.append(self.peg)
        self.hole = np.zeros(3)
        self.hole_yaw = 0.0

    def _socket(self) -> int:
        """Return a static body made of four walls enclosing the hole."""
        offset = HOLE_HALF + WALL_THICKNESS / 2
        length = HOLE_HALF + WALL_THICKNESS
        halves = [[WALL_THICKNESS / 2, length, WALL_HEIGHT / 2]] * 2
        halves += [[length, WALL_THICKNESS / 2, WALL_HEIGHT / 2]] * 2
        centres = [[offset, 0, 0], [-offset, 0, 0], [0, offset, 0], [0, -offset, 0]]
        kw = {'shapeTypes': [pb.GEOM_BOX] * 4, 'halfExtents': halves,
              'physicsClientId': self.client}
        col = pb.createCollisionShapeArray(collisionFramePositions=centres, **kw)
        vis = pb.createVisualShapeArray(visualFramePositions=centres,
                                        rgbaColors=[YELLOW] * 4, **kw)
        uid = pb.createMultiBody(0, col, vis, (0, 0, -1), physicsClientId=self.client)
        pb.changeDynamics(uid, -1, lateralFriction=OBJECT_FRICTION, restitution=0.0,
                          physicsClientId=self.client)
        return uid

    def reset(self, rng: np.random.Generator) -> None:
        """Place peg (upright) and socket at random positions and headings."""
        peg_xy, hole_xy = sample_positions(rng, 2, 0.15)
        self.place(self.peg, (peg_xy[0], peg_xy[1], PEG_HALF_HEIGHT), rng.uniform(-np.pi, np.pi))
        self.hole = np.array([hole_xy[0], hole_xy[1], WALL_HEIGHT])
        self.hole_yaw = float(rng.uniform(-np.pi / 4, np.pi / 4))
        self.place(self.socket, (hole_xy[0], hole_xy[1], WALL_HEIGHT / 2), self.hole_yaw)

    def success(self) -> bool:
        """Return whether the peg bottom is deep enough in the hole and centred."""
        pos = self.pose(self.peg)[0]
        bottom = pos[2] - PEG_HALF_HEIGHT
        return bool(bottom < WALL_HEIGHT - INSERT_DEPTH
                    and np.linalg.norm(pos[:2] - self.hole[:2]) < CENTER_TOLERANCE)

    def goal_distance(self) -> float:
        """
        Return how far (m) the peg is from inserted.

        The sum of its centre's offset from the hole axis, how far its corners
        are turned away from the hole's walls (heading modulo 90 degrees), and
        the height its bottom still has to descend: to the insertion depth once
        it is over the hole, a wall's height before (it must clear the wall).
        """
        pos, orn = self.pose(self.peg)
        offset = float(np.linalg.norm(pos[:2] - self.hole[:2]))
        yaw = pb.getEulerFromQuaternion(orn)[2]
        turn = abs((yaw - self.hole_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)
        corner_shift = turn * PEG_HALF * np.sqrt(2.0)
        bottom = pos[2] - PEG_HALF_HEIGHT
        descent = (max(bottom - (WALL_HEIGHT - INSERT_DEPTH), 0.0) if offset < HOLE_HALF
                   else WALL_HEIGHT)
        return offset + corner_shift + descent

    def tilt(self) -> float:
        """Return how far (rad) the peg's long axis leans from vertical; it must go in upright."""
        return tilt_of(self.pose(self.peg)[1])

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Return the peg pose and the hole's top-centre position and orientation."""
        pos, orn = self.pose(self.peg)
        hole_orn = np.array(pb.getQuaternionFromEuler((0.0, 0.0, self.hole_yaw)))
        return {'peg_position': pos, 'peg_orientation': orn,
                'hole_position': self.hole.copy(), 'hole_orientation': hole_orn}

    def scene_objects(self, state: Optional[dict[str, np.ndarray]] = None) -> list[SceneObject]:
        """
        Return the red peg and the hole (its top centre; in it means 2 cm below).

        The hole's depth to reach is its ``half_height``, its centring
        tolerance the task's: the peg is in once its bottom is that deep and
        its axis that close.
        """
        state = self.privileged_state() if state is None else state
        return [SceneObject('red peg', state['peg_position'], PEG_HALF, PEG_HALF_HEIGHT,
                            CENTER_TOLERANCE, movable=True),
                SceneObject('yellow hole', state['hole_position'], HOLE_HALF, INSERT_DEPTH,
                            CENTER_TOLERANCE, movable=False)]
