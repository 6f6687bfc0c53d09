"""Pick and place: carry a cube into a target region and set it down."""

from typing import Optional

import numpy as np

from visual_rl_stack.sim.scene_objects import SceneObject

from .base import BLUE, create_marker, GREEN, sample_positions, Task
from .lift import CUBE_HALF, CUBE_MASS, cube_object

TOLERANCE = 0.03
TARGET_RADIUS = 0.04


class PickPlaceTask(Task):
    """Place the green cube, resting on the table, within 3 cm of the blue target centre."""

    name = 'pick_place'
    max_episode_steps = 100
    state_fields = ('cube_position', 'cube_orientation', 'target_position')

    def instruction(self) -> str:
        """Describe the goal."""
        return 'put the green cube on the blue target'

    def _build(self) -> None:
        """Create the cube and the flat target marker."""
        self.cube = self.box([CUBE_HALF] * 3, GREEN, CUBE_MASS)
        self.target_marker = create_marker(self.client, TARGET_RADIUS, BLUE, length=0.001)
        self.bodies.append(self.cube)
        self.target = np.zeros(3)

    def reset(self, rng: np.random.Generator) -> None:
        """Place cube and target at least 12 cm apart."""
        cube_xy, target_xy = sample_positions(rng, 2, 0.12)
        self.place(self.cube, (cube_xy[0], cube_xy[1], CUBE_HALF), rng.uniform(-np.pi, np.pi))
        self.target = np.array([target_xy[0], target_xy[1], 0.0])
        self.place(self.target_marker, self.target + (0.0, 0.0, 0.0005))

    def success(self) -> bool:
        """Return whether the cube rests on the table inside the target region."""
        pos = self.pose(self.cube)[0]
        return bool(np.linalg.norm(pos[:2] - self.target[:2]) < TOLERANCE
                    and pos[2] < CUBE_HALF + 0.005)

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Return the cube pose and the target position."""
        pos, orn = self.pose(self.cube)
        return {'cube_position': pos, 'cube_orientation': orn,
                'target_position': self.target.copy()}

    def scene_objects(self, state: Optional[dict[str, np.ndarray]] = None) -> list[SceneObject]:
        """Return the green cube and the flat blue target (within 3 cm counts as on it)."""
        state = self.privileged_state() if state is None else state
        return [cube_object('green cube', state['cube_position']),
                SceneObject('blue target', state['target_position'], 0.0, 0.0, TOLERANCE,
                            movable=False)]
