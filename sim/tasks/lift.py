"""Lift: grasp a cube and raise it above 10 cm."""

from typing import Optional

import numpy as np

from visual_rl_stack.sim.scene_objects import SceneObject

from .base import RED, sample_positions, Task

CUBE_HALF = 0.02
CUBE_MASS = 0.1
LIFT_HEIGHT = 0.10


class LiftTask(Task):
    """Lift a 4 cm cube so that its centre is at least 10 cm above the table."""

    name = 'lift'
    max_episode_steps = 60
    state_fields = ('cube_position', 'cube_orientation')

    def instruction(self) -> str:
        """Describe the goal."""
        return 'pick up the red cube and lift it'

    def _build(self) -> None:
        """Create the cube."""
        self.cube = self.box([CUBE_HALF] * 3, RED, CUBE_MASS)
        self.bodies.append(self.cube)

    def reset(self, rng: np.random.Generator) -> None:
        """Place the cube at a random table position and heading."""
        (xy,) = sample_positions(rng, 1, 0.0)
        self.place(self.cube, (xy[0], xy[1], CUBE_HALF), rng.uniform(-np.pi, np.pi))

    def success(self) -> bool:
        """Return whether the cube centre is above the lift height."""
        return bool(self.pose(self.cube)[0][2] > LIFT_HEIGHT)

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Return the cube pose."""
        pos, orn = self.pose(self.cube)
        return {'cube_position': pos, 'cube_orientation': orn}

    def scene_objects(self, state: Optional[dict[str, np.ndarray]] = None) -> list[SceneObject]:
        """Return the red cube."""
        state = self.privileged_state() if state is None else state
        return [cube_object('red cube', state['cube_position'])]


def cube_object(name: str, position: np.ndarray, tolerance: float = 0.02) -> SceneObject:
    """Return one of the 4 cm cubes as a named scene object."""
    return SceneObject(name, position, CUBE_HALF, CUBE_HALF, tolerance, movable=True)
