"""
Completion predicates and shaping of each stage kind, over a scene's named objects.

Every check reads the current state (end effector, finger opening, object
positions and sizes), so a stage counts as done only while the scene shows
it: a dropped cube undoes its grasp. The one memory is where the episode
started: a pushed block that has moved has been reached, even while the
gripper backs off to push again. A goal's progress is the furthest
of its stages whose predicate holds, checked from the last stage down (a cube
resting on its target has been moved there, however it got there).
Shaping values lie in [0, 1] and rise as the open stage's goal nears.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
from visual_rl_stack.sim.scene_objects import SceneObject

from .plan import Goal


@dataclass(frozen=True)
class SceneState:
    """What the stages are judged on: the TCP, the finger opening and the named objects."""

    ee_position: np.ndarray
    gripper_width: float
    objects: dict[str, SceneObject]


@dataclass(frozen=True)
class StageTolerances:
    """How close counts: distances in metres, widths of the finger opening."""

    #: The TCP within this of an object's grasp axis has reached it.
    reach_radius: float = 0.02
    #: The object's grasp axis within this of the TCP, fingers closed on it: held.
    hold_radius: float = 0.025
    #: Slack of the finger opening around the object's width while it is held.
    grip_slack: float = 0.01
    #: The bottom this high above the table: lifted.
    lift_clearance: float = 0.08
    #: Vertical slack of "resting on".
    rest_tolerance: float = 0.008
    #: The finger opening before a grasp (the shaping of closing starts there).
    open_width: float = 0.06
    #: Length scale of the distance shaping exp(-d / scale).
    distance_scale: float = 0.1
    #: The TCP within this of a pushed object's side has reached it.
    push_contact: float = 0.04
    #: A pushed object this far from where it started has been reached (the TCP may back off).
    push_moved: float = 0.01

    def __post_init__(self) -> None:
        """Refuse tolerances that no state could meet."""
        bad = {k: v for k, v in vars(self).items() if not v > 0}
        if bad:
            raise ValueError(f'stage tolerances must be positive, got {bad}')


def axis_distance(obj: SceneObject, point: np.ndarray) -> float:
    """
    Return the distance of ``point`` from the object's grasp axis.

    The axis is the vertical segment through the centre where fingers can
    close on it: a point for a cube, most of a peg's height for a peg.
    """
    offset = np.asarray(point, dtype=np.float64) - obj.position
    reach = max(obj.half_height - obj.half_width, 0.0)
    vertical = max(abs(offset[2]) - reach, 0.0)
    return float(np.hypot(np.linalg.norm(offset[:2]), vertical))


def horizontal(a: SceneObject, b: SceneObject) -> float:
    """Return the horizontal distance between two objects' centres."""
    return float(np.linalg.norm(a.position[:2] - b.position[:2]))


class GoalChecks:
    """The predicates and shaping of one goal's stages in one scene state."""

    def __init__(self, goal: Goal, state: SceneState, tolerances: StageTolerances,
                 start: Optional[SceneState] = None):
        """Look up the goal's objects in ``state`` (and ``start``, the episode's first state)."""
        self.goal, self.state, self.tol, self.start = goal, state, tolerances, start
        self.obj = state.objects[goal.obj]
        self.dest = None if goal.destination is None else state.objects[goal.destination]

    def shaped(self, distance: float) -> float:
        """Return exp(-distance / scale): 1 at the goal, falling with distance."""
        return float(np.exp(-max(distance, 0.0) / self.tol.distance_scale))

    @property
    def fingers_open(self) -> float:
        """Return how far the fingers are opened beyond the object, in [0, 1]."""
        width = 2 * self.obj.half_width
        return float(np.clip((self.state.gripper_width - width - self.tol.grip_slack)
                             / max(self.tol.open_width - width - self.tol.grip_slack, 1e-6),
                             0.0, 1.0))

    def reached(self) -> bool:
        """Return whether the TCP is at the object (at its side, for a push)."""
        if self.goal.kind == 'push':
            return self.side_distance() < self.tol.push_contact or self.pushed()
        if not self.obj.movable:
            return axis_distance(self.obj, self.state.ee_position) < self.obj.tolerance
        return axis_distance(self.obj, self.state.ee_position) < self.tol.reach_radius

    def side_distance(self) -> float:
        """Return the TCP's distance from the object's surface (for pushing)."""
        centre = axis_distance(self.obj, self.state.ee_position)
        return max(centre - self.obj.half_width, 0.0)

    def pushed(self) -> bool:
        """Return whether the object has moved from where the episode started it."""
        if self.start is None or self.goal.obj not in self.start.objects:
            return False
        return horizontal(self.obj, self.start.objects[self.goal.obj]) > self.tol.push_moved

    def held(self) -> bool:
        """Return whether the object sits between closed fingers at the TCP."""
        width = self.state.gripper_width
        return (axis_distance(self.obj, self.state.ee_position) < self.tol.hold_radius
                and 0.005 < width < 2 * self.obj.half_width + self.tol.grip_slack)

    def lifted(self) -> bool:
        """Return whether the object's bottom is at the lift clearance."""
        return self.obj.bottom >= self.tol.lift_clearance

    def over_destination(self) -> bool:
        """Return whether the object is above its destination (or inside a hole's opening)."""
        floor = self.dest.bottom if self.goal.kind == 'insert' else self.dest.top
        return (horizontal(self.obj, self.dest) < max(self.dest.tolerance, self.dest.half_width)
                and self.obj.bottom >= floor - self.tol.rest_tolerance)

    def resting_on(self) -> bool:
        """Return whether the object rests on its destination's top, within its tolerance."""
        return (horizontal(self.obj, self.dest) < self.dest.tolerance
                and abs(self.obj.bottom - self.dest.top) < self.tol.rest_tolerance)

    def inserted(self) -> bool:
        """Return whether the object is as deep in the hole as counts, and centred."""
        return (horizontal(self.obj, self.dest) < self.dest.tolerance
                and self.obj.bottom <= self.dest.bottom)

    def completed(self) -> int:
        """Return how many of the goal's stages are done, by the furthest predicate that holds."""
        kind = self.goal.kind
        if kind == 'reach':
            return int(self.reached())
        if kind == 'push':
            return 2 if horizontal(self.obj, self.dest) < self.dest.tolerance else int(
                self.reached())
        if kind == 'move' and self.resting_on():
            return 5 if self.held() else 6
        if kind == 'insert' and self.inserted():
            return 5
        if not self.held():
            return int(self.reached())
        if kind != 'lift' and self.over_destination():
            return 4
        return 3 if self.lifted() else 2

    def shaping(self, stage_kind: str) -> float:
        """Return the shaping in [0, 1] of the open stage ``stage_kind``."""
        if stage_kind == 'reach':
            distance = (self.side_distance() if self.goal.kind == 'push'
                        else axis_distance(self.obj, self.state.ee_position))
            return self.shaped(distance)
        if stage_kind == 'grasp':
            return 1.0 - self.fingers_open
        if stage_kind == 'lift':
            return float(np.clip(self.obj.bottom / self.tol.lift_clearance, 0.0, 1.0))
        if stage_kind in ('move_above', 'push'):
            return self.shaped(horizontal(self.obj, self.dest))
        if stage_kind == 'place':
            return self.shaped(abs(self.obj.bottom - self.dest.top))
        if stage_kind == 'insert':
            return self.shaped(self.obj.bottom - self.dest.bottom)
        if stage_kind == 'release':
            return self.fingers_open
        raise ValueError(f'unknown stage kind {stage_kind!r}')
