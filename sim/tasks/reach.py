"""Reach: bring the tool-centre point to a visible target marker."""

from typing import Optional

import numpy as np

from visual_rl_stack.sim.scene_objects import SceneObject

from .base import create_marker, GREEN, Task

TOLERANCE = 0.02
TARGET_LO = np.array([0.38, -0.22, 0.05])
TARGET_HI = np.array([0.68, 0.22, 0.32])


class ReachTask(Task):
    """Move the TCP within 2 cm of a floating green sphere."""

    name = 'reach'
    max_episode_steps = 50
    state_fields = ('target_position',)

    def instruction(self) -> str:
        """Describe the goal."""
        return 'move the gripper to the green ball'

    def _build(self) -> None:
        """Create the visual-only target marker."""
        self.marker = create_marker(self.client, 0.015, GREEN)
        self.target = np.zeros(3)

    def reset(self, rng: np.random.Generator) -> None:
        """Draw a target position in free space above the table."""
        self.target = rng.uniform(TARGET_LO, TARGET_HI)
        self.place(self.marker, self.target)

    def success(self) -> bool:
        """Return whether the TCP is within tolerance of the target."""
        return bool(np.linalg.norm(self.robot_state().ee_position - self.target) < TOLERANCE)

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Return the target position."""
        return {'target_position': self.target.copy()}

    def scene_objects(self, state: Optional[dict[str, np.ndarray]] = None) -> list[SceneObject]:
        """Return the green ball (visual only: the gripper within 2 cm counts as at it)."""
        state = self.privileged_state() if state is None else state
        return [SceneObject('green ball', state['target_position'], 0.0, 0.0, TOLERANCE,
                            movable=False)]
