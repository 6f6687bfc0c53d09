"""Stack: build a tower of two or three cubes, one stage per placed cube."""

from typing import Optional

import numpy as np

from visual_rl_stack.sim.scene_objects import SceneObject

from .base import BLUE, GREEN, RED, sample_positions, Task
from .lift import CUBE_HALF, CUBE_MASS, cube_object

COLORS = ((RED, 'red'), (GREEN, 'green'), (BLUE, 'blue'))
XY_TOLERANCE = 0.02
Z_TOLERANCE = 0.008


def cube_fields(count: int) -> tuple[str, ...]:
    """Return the privileged-state keys of ``count`` cubes."""
    return tuple(f'cube{i}_{part}' for i in range(count) for part in ('position', 'orientation'))


class StackTask(Task):
    """Stack cube 1 on cube 0 (and cube 2 on cube 1); success once released."""

    name = 'stack'
    n_blocks = 2
    max_episode_steps = 120
    state_fields = cube_fields(2)

    def instruction(self) -> str:
        """Describe the goal, bottom-up."""
        names = [c[1] for c in COLORS[:self.n_blocks]]
        steps = [f'the {top} cube on the {below} cube' for below, top in zip(names, names[1:])]
        return 'stack ' + ', then '.join(steps)

    def _build(self) -> None:
        """Create the cubes, bottom one first."""
        self.cubes = [self.box([CUBE_HALF] * 3, color, CUBE_MASS)
                      for color, _ in COLORS[:self.n_blocks]]
        self.bodies.extend(self.cubes)

    def reset(self, rng: np.random.Generator) -> None:
        """Scatter the cubes on the table at least 10 cm apart (room for open fingers)."""
        for uid, xy in zip(self.cubes, sample_positions(rng, self.n_blocks, 0.10)):
            self.place(uid, (xy[0], xy[1], CUBE_HALF), rng.uniform(-np.pi, np.pi))

    def stages_completed(self) -> int:
        """Return how many cubes, counted from the bottom, sit on the one below."""
        positions = [self.pose(uid)[0] for uid in self.cubes]
        if positions[0][2] > CUBE_HALF + Z_TOLERANCE:
            return 0
        stages = 0
        for below, top in zip(positions, positions[1:]):
            if (np.linalg.norm(top[:2] - below[:2]) > XY_TOLERANCE
                    or abs(top[2] - below[2] - 2 * CUBE_HALF) > Z_TOLERANCE):
                break
            stages += 1
        return stages

    def success(self) -> bool:
        """Return whether the whole tower stands without the robot holding it."""
        return (self.stages_completed() == self.n_blocks - 1
                and not self.touching_robot(self.cubes[-1]))

    def privileged_state(self) -> dict[str, np.ndarray]:
        """Return every cube's pose."""
        state = {}
        for i, uid in enumerate(self.cubes):
            state[f'cube{i}_position'], state[f'cube{i}_orientation'] = self.pose(uid)
        return state

    def scene_objects(self, state: Optional[dict[str, np.ndarray]] = None) -> list[SceneObject]:
        """Return the cubes by colour (one on another within 2 cm counts as stacked)."""
        state = self.privileged_state() if state is None else state
        return [cube_object(f'{name} cube', state[f'cube{i}_position'], XY_TOLERANCE)
                for i, (_, name) in enumerate(COLORS[:self.n_blocks])]


class Stack3Task(StackTask):
    """Three-cube variant of the stacking task."""

    name = 'stack3'
    n_blocks = 3
    max_episode_steps = 200
    state_fields = cube_fields(3)
