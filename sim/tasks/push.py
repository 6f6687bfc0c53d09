"""Push: slide a block across the table into a goal region."""

from typing import Optional

import numpy as np

from visual_rl_stack.sim.scene_objects import SceneObject

from .base import BLUE, create_marker, sample_positions, Task, YELLOW

BLOCK_HALF = 0.025
BLOCK_MASS = 0.2
TOLERANCE = 0.03
GOAL_RADIUS = 0.03


class PushTask(Task):
    """Push the blue block until its centre is within 3 cm of the goal disc centre."""

    name = 'push'
    max_episode_steps = 100
    state_fields = ('block_position', 'block_orientation', 'goal_position')

    def instruction(self) -> str:
        """Describe the goal."""
        return 'push the blue block onto the yellow circle'

    def _build(self) -> None:
        """Create the block and the flat goal marker."""
        self.block = self.box([BLOCK_HALF] * 3, BLUE, BLOCK_MASS)
        self.goal_marker = create_marker(self.client, GOAL_RADIUS, YELLOW, length=0.001)
        self.bodies.append(self.block)
        self.goal = np.zeros(3)

    def reset(self, rng: np.random.Generator) -> None:
        """Place block and goal 10 to 20 cm apart."""
        while True:
            block_xy, goal_xy = sample_positions(rng, 2, 0.10)
            if np.linalg.norm(block_xy - goal_xy) <= 0.20:
                break
        self.place(self.block, (block_xy[0], block_xy[1], BLOCK_HALF),
                   rng.uniform(-np.pi, np.pi))
        self.goal = np.array([goal_xy[0], goal_xy[1], 0.0])
        self.place(self.goal_marker, self.goal + (0.0, 0.0, 0.0005))

    def success(self) -> bool:
        """Return whether the block centre is within tolerance of the goal."""
        xy = self.pose(self.block)[0][:2]
        return bool(np.linalg.norm(xy - self.goal[:2]) < TOLERANCE)

    def goal_distance(self) -> float:
        """Return the block centre's distance (m) from the goal centre on the table."""
        xy = self.pose(self.block)[0][:2]
        return float(np.linalg.norm(xy - self.goal[:2]))

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Return the block pose and the goal position."""
        pos, orn = self.pose(self.block)
        return {'block_position': pos, 'block_orientation': orn,
                'goal_position': self.goal.copy()}

    def scene_objects(self, state: Optional[dict[str, np.ndarray]] = None) -> list[SceneObject]:
        """Return the blue block (a cube) and the yellow goal circle (a target)."""
        state = self.privileged_state() if state is None else state
        return [SceneObject('blue cube', state['block_position'], BLOCK_HALF, BLOCK_HALF,
                            TOLERANCE, movable=True),
                SceneObject('yellow target', state['goal_position'], 0.0, 0.0, TOLERANCE,
                            movable=False)]
