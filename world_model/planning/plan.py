"""
Goals and stages: what a plan is, how goals expand into stages, and how it is checked.

A goal is one thing the instruction asks for (move the green cube onto the
blue target). It expands into the numbered stages a staged reward follows,
each a kind from :data:`STAGE_KINDS` over one object and maybe a destination.
A plan is checked against the scene's named objects before it is used: every
name must be there and fit its role (a ball cannot be grasped, only a hole
can be inserted into), so a plan never rewards a made-up object.
"""

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from visual_rl_stack.sim.scene_objects import SceneObject

#: Goal kind -> the stage kinds it expands into, in order.
GOAL_STAGES = {
    'reach': ('reach',),
    'lift': ('reach', 'grasp', 'lift'),
    'move': ('reach', 'grasp', 'lift', 'move_above', 'place', 'release'),
    'insert': ('reach', 'grasp', 'lift', 'move_above', 'insert'),
    'push': ('reach', 'push'),
}
STAGE_KINDS = ('reach', 'grasp', 'lift', 'move_above', 'place', 'release', 'insert', 'push')
#: Goal kinds that carry a destination.
WITH_DESTINATION = ('move', 'insert', 'push')
#: Object kinds a gripper can pick up or push.
GRASPABLE = ('cube', 'peg')
#: Destination kinds per goal kind.
DESTINATIONS = {'move': ('cube', 'target'), 'insert': ('hole',), 'push': ('target',)}


class PlanError(ValueError):
    """An instruction or reply that gives no usable plan; says what was understood."""


@dataclass(frozen=True)
class Goal:
    """One thing to achieve: a kind, the object acted on and (for some) its destination."""

    kind: str
    obj: str
    destination: Optional[str] = None

    def describe(self) -> str:
        """Return the goal in words, e.g. 'move green cube onto blue target'."""
        preposition = {'move': 'onto', 'insert': 'into', 'push': 'to'}.get(self.kind)
        if preposition is None:
            return f'{self.kind} {self.obj}'
        return f'{self.kind} {self.obj} {preposition} {self.destination}'


@dataclass(frozen=True)
class Stage:
    """One numbered stage of a plan (index from 1 over the whole plan)."""

    index: int
    kind: str
    obj: str
    destination: Optional[str]
    goal: int

    @property
    def name(self) -> str:
        """Return the stage in words, e.g. 'move_above green cube over blue target'."""
        link = {'move_above': 'over', 'place': 'on', 'insert': 'into', 'push': 'to'}.get(self.kind)
        return f'{self.kind} {self.obj}' + (f' {link} {self.destination}' if link else '')


@dataclass(frozen=True)
class Plan:
    """An instruction's goals and their stages, from one planner."""

    instruction: str
    goals: tuple[Goal, ...]
    planner: str

    @property
    def stages(self) -> tuple[Stage, ...]:
        """Return every goal's stages, numbered from 1."""
        stages = []
        for g, goal in enumerate(self.goals):
            for kind in GOAL_STAGES[goal.kind]:
                stages.append(Stage(len(stages) + 1, kind, goal.obj, goal.destination, g))
        return tuple(stages)

    def objects(self) -> list[str]:
        """Return the object names the plan refers to, in order of first use."""
        names = [n for g in self.goals for n in (g.obj, g.destination) if n]
        return list(dict.fromkeys(names))

    def to_dict(self) -> dict:
        """Return the plan as JSON-ready data (goals and numbered stages)."""
        return {'instruction': self.instruction, 'planner': self.planner,
                'goals': [{'kind': g.kind, 'object': g.obj, 'destination': g.destination,
                           'text': g.describe()} for g in self.goals],
                'stages': [{'index': s.index, 'kind': s.kind, 'object': s.obj,
                            'destination': s.destination, 'goal': s.goal, 'name': s.name}
                           for s in self.stages]}


def check_goal(goal: Goal) -> None:
    """Raise :class:`PlanError` unless ``goal`` has a known kind and the right names."""
    if goal.kind not in GOAL_STAGES:
        raise PlanError(f'unknown goal kind {goal.kind!r}; known: {", ".join(GOAL_STAGES)}')
    if not goal.obj:
        raise PlanError(f'goal {goal.kind!r} names no object')
    if (goal.destination is not None) != (goal.kind in WITH_DESTINATION):
        need = 'needs' if goal.kind in WITH_DESTINATION else 'takes no'
        raise PlanError(f'goal {goal.describe()!r}: {goal.kind} {need} destination')
    if goal.destination == goal.obj:
        raise PlanError(f'goal {goal.describe()!r} puts an object on itself')


def validate(plan: Plan, scene: Iterable[SceneObject]) -> None:
    """Raise :class:`PlanError` unless every goal's names are scene objects fit for their role."""
    objects = {o.name: o for o in scene}
    known = ', '.join(sorted(objects)) or 'none'
    if not plan.goals:
        raise PlanError(f'the plan for {plan.instruction!r} has no goals')
    for goal in plan.goals:
        check_goal(goal)
        for name in (goal.obj, goal.destination):
            if name is not None and name not in objects:
                raise PlanError(f'goal {goal.describe()!r} names {name!r}, which is not in '
                                f'the scene (it has: {known})')
        thing = objects[goal.obj]
        if goal.kind in ('lift', 'move', 'insert', 'push') and (
                not thing.movable or thing.kind not in GRASPABLE):
            raise PlanError(f'goal {goal.describe()!r}: a {thing.kind} cannot be picked up '
                            f'or pushed')
        if goal.destination is not None and (
                objects[goal.destination].kind not in DESTINATIONS[goal.kind]):
            raise PlanError(f'goal {goal.describe()!r}: a {objects[goal.destination].kind} is '
                            f'no destination for {goal.kind} (one of '
                            f'{", ".join(DESTINATIONS[goal.kind])})')


def goals_from_stages(stages: Sequence[dict]) -> tuple[Goal, ...]:
    """
    Return the goals whose expansion is exactly ``stages`` (dicts of kind/object/destination).

    A model that proposes stages must propose whole goals in order: a stage
    sequence that is not a concatenation of goal expansions (a grasp without
    its reach, a place of another object than was lifted) is refused.
    """
    goals, i = [], 0
    while i < len(stages):
        best = None
        for kind, kinds in sorted(GOAL_STAGES.items(), key=lambda item: -len(item[1])):
            window = stages[i:i + len(kinds)]
            if [s.get('kind') for s in window] != list(kinds):
                continue
            names = {s.get('object') for s in window}
            destinations = {s.get('destination') for s in window if s.get('destination')}
            if len(names) == 1 and len(destinations) <= 1:
                destination = destinations.pop() if destinations else None
                best = Goal(kind, names.pop(), destination if kind in WITH_DESTINATION else None)
                break
        if best is None:
            raise PlanError(f'stages from {i + 1} ({[s.get("kind") for s in stages[i:i + 6]]}) '
                            f"are no goal's stages; a goal expands as one of "
                            f'{ {k: list(v) for k, v in GOAL_STAGES.items()} }')
        check_goal(best)
        goals.append(best)
        i += len(GOAL_STAGES[best.kind])
    return tuple(goals)
