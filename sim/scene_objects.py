"""
Named objects of a scene, the vocabulary shared by simulated and estimated state.

A stage planner grounds the words of an instruction ("the green cube") in
objects with these names, and judges its stages on their positions and sizes.
The simulator fills them from privileged state; on a real arm they come from
perception (affordance keypoints, the world model's own estimate). Names read
``"<colour> <kind>"`` (or the kind alone when it has no colour), with kinds
from :data:`OBJECT_KINDS`.
"""

from dataclasses import dataclass

import numpy as np

#: The kinds of object a tabletop scene can hold; an instruction's nouns map onto them.
OBJECT_KINDS = ('cube', 'target', 'ball', 'peg', 'hole')
#: Colours an object name may carry.
OBJECT_COLOURS = ('red', 'green', 'blue', 'yellow')


@dataclass(frozen=True)
class SceneObject:
    """One object: where it is (m, world frame), how big, and how close counts as 'at' it."""

    name: str
    #: Centre of the body; for flat targets and holes, the centre of the surface to reach.
    position: np.ndarray
    #: Half of the width between the fingers that grasp it (0 for what cannot be grasped).
    half_width: float
    #: Half of its height: from ``position`` down to its bottom (0 for flat things; for a hole,
    #: how deep below its opening something must reach to count as in it).
    half_height: float
    #: Horizontal distance (m) from its centre within which something counts as on or in it.
    tolerance: float
    movable: bool

    def __post_init__(self) -> None:
        """Check the name and the geometry."""
        words = self.name.split()
        if not words or words[-1] not in OBJECT_KINDS or any(
                word not in OBJECT_COLOURS for word in words[:-1]) or len(words) > 2:
            raise ValueError(f'object name {self.name!r} must read "[colour] kind" with a '
                             f'colour of {OBJECT_COLOURS} and a kind of {OBJECT_KINDS}')
        position = np.asarray(self.position, dtype=np.float64)
        if position.shape != (3,) or not np.isfinite(position).all():
            raise ValueError(f'{self.name}: position must be 3 finite numbers, got {position}')
        object.__setattr__(self, 'position', position)
        if min(self.half_width, self.half_height) < 0 or self.tolerance <= 0:
            raise ValueError(f'{self.name}: sizes must be >= 0 and the tolerance > 0')

    @property
    def kind(self) -> str:
        """Return what sort of object it is: the last word of its name."""
        return self.name.split()[-1]

    @property
    def colour(self) -> str:
        """Return the colour word of its name, or '' when it has none."""
        words = self.name.split()
        return words[0] if len(words) == 2 else ''

    @property
    def bottom(self) -> float:
        """Return the height (m) of its lowest point."""
        return float(self.position[2] - self.half_height)

    @property
    def top(self) -> float:
        """Return the height (m) of its top surface (what another object rests on)."""
        return float(self.position[2] + self.half_height)
