"""
The staged reward inside the simulator: privileged object state, one plan per instruction.

Registered as ``planner_stages`` in :mod:`visual_rl_stack.core.rewards`, so
residual RL and the world-model trainer open it by name. At every reset the plan for
the instruction is made once (cached: it depends on the words and the object
names, not on where the objects are); each step judges the simulator's
state against it (:mod:`.staged_reward`). An instruction the planner cannot
ground gives a sparse-only reward and a warning that says why, never a
crash in a worker or a dense reward for a made-up plan.
"""

from typing import Any, Callable, Optional
import warnings

from visual_rl_stack.core.rewards import combine
from visual_rl_stack.sim.scene import StepResult, TabletopSim

from .plan import Plan, PlanError
from .planners import open_planner
from .stage_checks import SceneState, StageTolerances
from .staged_reward import StagedReward, StagedWeights, StageStatus


def sim_scene_state(sim: TabletopSim) -> SceneState:
    """Return the state the stages are judged on, from the simulator's privileged state."""
    robot = sim.robot_state()
    return SceneState(robot.ee_position, float(robot.gripper_width),
                      {o.name: o for o in sim.task.scene_objects()})


class SimStagedReward:
    """A reward function for RL workers: ``reset(sim, seed)`` then ``(sim, result) -> reward``."""

    def __init__(self, planner: Callable[..., Plan], alpha: float = 0.5, potential: bool = True,
                 gamma: float = 0.99, tolerances: StageTolerances = StageTolerances(),
                 weights: StagedWeights = StagedWeights()):
        """Use ``planner(instruction, scene_objects)``; ``alpha`` < 1 keeps success on top."""
        if not 0.0 < alpha < 1.0:
            raise ValueError(f'alpha must be in (0, 1) so that success dominates, got {alpha}')
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f'gamma must be in (0, 1], got {gamma}')
        self.planner, self.alpha, self.potential, self.gamma = planner, alpha, potential, gamma
        self.tolerances, self.weights = tolerances, weights
        self.rewards: dict[tuple[str, tuple[str, ...]], tuple[Optional[StagedReward], str]] = {}
        #: 'staged: N stages' or why the reward is sparse only, for the current episode.
        self.diagnostic = 'not reset yet'
        self.reward: Optional[StagedReward] = None
        self.status: Optional[StageStatus] = None
        self.start: Optional[SceneState] = None
        self.phi = 0.0

    @property
    def level(self) -> float:
        """Return phi, the scaled staged progress of the latest state."""
        return self.phi

    @property
    def progress(self) -> float:
        """Return how far the latest state is through the plan (0-1); 0 without a plan."""
        return 0.0 if self.status is None else float(self.status.progress)

    @property
    def planned(self) -> bool:
        """Return whether this episode has a plan (else the reward is sparse only)."""
        return self.reward is not None

    @property
    def stage_count(self) -> Optional[int]:
        """Return the placements completed in the latest state (a tower's height)."""
        return None if self.status is None else self.status.placements

    def reset(self, sim: TabletopSim, seed: Optional[int] = None) -> None:
        """Plan the episode's instruction (once per instruction and object names)."""
        objects = sim.task.scene_objects()
        key = (sim.instruction, tuple(o.name for o in objects))
        if key not in self.rewards:
            try:
                reward = StagedReward(self.planner(sim.instruction, objects), self.tolerances,
                                      self.weights)
                self.rewards[key] = (reward, f'staged: {len(reward.stages)} stages')
            except PlanError as error:
                self.rewards[key] = (None, f'sparse only: {error}')
                warnings.warn(f'staged reward: sparse only for {sim.instruction!r}: {error}')
        self.reward, self.diagnostic = self.rewards[key]
        self.start = sim_scene_state(sim)
        self.status = None if self.reward is None else self.reward.status(self.start, self.start)
        self.phi = 0.0 if self.status is None else self.alpha * self.status.progress

    def __call__(self, sim: TabletopSim, result: StepResult) -> float:
        """Return the success reward when there is one, else the staged shaping."""
        if self.start is None:
            raise RuntimeError('call reset(sim) before the first step')
        sparse = 1.0 if result.success else 0.0
        if self.reward is None:
            return sparse
        self.status = self.reward.status(sim_scene_state(sim), self.start)
        phi = self.alpha * self.status.progress
        dense = self.gamma * phi - self.phi if self.potential else phi
        self.phi = phi
        return combine(sparse, dense)


def staged_reward(task: Optional[str] = None, planner: str = 'rules',
                  model: Optional[str] = None, **options: Any) -> SimStagedReward:
    """
    Return a fresh staged reward (``planner_stages`` in the reward registry).

    ``planner`` and ``model`` (a local folder, for a planner with weights)
    choose who writes the stages; ``options`` are :class:`SimStagedReward`'s
    (alpha, potential, gamma). ``task`` is accepted for the registry's
    signature; the instruction comes from the simulator at every reset.
    """
    return SimStagedReward(open_planner(planner, model), **options)
