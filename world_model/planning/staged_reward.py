"""
The staged dense reward of a plan: a bonus per completed stage, shaping of the open one.

Goals are judged in order (:mod:`.stage_checks`): the stages of a goal count
only once every goal before it is complete, so knocking the tower over takes
its bonus back. With ``n`` completed stages, open-stage shaping ``s`` in
[0, 1] and the open goal's object held (``h``)::

    value = bonus * n + shaping_weight * s + grasp_weight * h

The weights are below the bonus, so completing a stage always raises the
value (``shaping_weight + grasp_weight < bonus``). ``progress`` is the value
over its maximum (all stages done), in [0, 1]. As a reward for RL it is paid
as a potential (``gamma * phi' - phi``, ``phi = alpha * progress``, optimal
policies unchanged) or as the level ``phi`` itself, and the sparse success
reward replaces it whenever it is non-zero.
"""

from dataclasses import dataclass
from typing import Optional

from .plan import Plan, Stage
from .stage_checks import GoalChecks, SceneState, StageTolerances


@dataclass(frozen=True)
class StagedWeights:
    """The bonus of a completed stage and the weights of shaping and holding."""

    bonus: float = 1.0
    shaping_weight: float = 0.5
    grasp_weight: float = 0.25

    def __post_init__(self) -> None:
        """Refuse weights with which finishing a stage could lower the value."""
        if min(self.bonus, self.shaping_weight, self.grasp_weight) < 0 or (
                self.shaping_weight + self.grasp_weight >= self.bonus):
            raise ValueError('weights must be >= 0 with shaping_weight + grasp_weight < bonus, '
                             f'got {self}')


@dataclass(frozen=True)
class StageStatus:
    """Where a scene state stands in a plan."""

    #: Stages completed, counted from the first (0 .. len(plan.stages)).
    completed: int
    #: The open stage (None when the plan is done).
    stage: Optional[Stage]
    shaping: float
    held: bool
    value: float
    progress: float
    #: Leading 'move' goals whose object rests on its destination (a tower's height).
    placements: int

    @property
    def label(self) -> str:
        """Return the open stage as 'index/total name' (or 'done')."""
        return 'done' if self.stage is None else f'{self.stage.index} {self.stage.name}'


class StagedReward:
    """Judges scene states against one plan (each state on its own, beside the first)."""

    def __init__(self, plan: Plan, tolerances: StageTolerances = StageTolerances(),
                 weights: StagedWeights = StagedWeights()):
        """Expand the plan into its stages."""
        self.plan, self.tolerances, self.weights = plan, tolerances, weights
        self.stages = plan.stages
        if not self.stages:
            raise ValueError(f'the plan for {plan.instruction!r} has no stages')

    @property
    def maximum(self) -> float:
        """Return the value with every stage done."""
        return self.weights.bonus * len(self.stages)

    def status(self, state: SceneState, start: Optional[SceneState] = None) -> StageStatus:
        """Return the completed stages, the open one and the value (``start``: first state)."""
        completed, first, placements, counting = 0, 0, 0, True
        for g, goal in enumerate(self.plan.goals):
            checks = GoalChecks(goal, state, self.tolerances, start)
            count = len([s for s in self.stages if s.goal == g])
            done = checks.completed()
            if counting and goal.kind == 'move' and done >= 5:
                placements += 1
            else:
                counting = False
            if done < count:
                stage = self.stages[first + done]
                shaping = checks.shaping(stage.kind)
                held = goal.kind != 'reach' and goal.kind != 'push' and checks.held()
                value = (self.weights.bonus * (completed + done)
                         + self.weights.shaping_weight * shaping
                         + self.weights.grasp_weight * held)
                return StageStatus(completed + done, stage, shaping, held, value,
                                   min(value / self.maximum, 1.0), placements)
            completed += done
            first += count
        return StageStatus(completed, None, 0.0, False, self.maximum, 1.0, placements)
