"""
The simulator's built-in rewards: functions of the privileged state, no learner needed.

Each factory ``(task=None) -> reward function`` is registered by name in
:mod:`visual_rl_stack.core.rewards` (``sparse``, ``subtasks``, ``shaped``,
``upright``), which checks the task defines what a reward measures. A reward
function is ``(sim, step_result) -> float``; one with a ``reset(sim, seed)``
method is told of every new episode after the simulator has reset. This
module imports nothing above the simulator, so every learner can use it.
"""

from typing import Callable, Optional

import numpy as np

from .scene import StepResult, TabletopSim

RewardFunction = Callable[[TabletopSim, StepResult], float]

#: Metres of goal distance the shaped reward pays as much for as one success.
SHAPING_METRES = 0.05
#: Lean (rad) the upright reward charges as much for as one success pays: lying flat.
UPRIGHT_RADIANS = np.pi / 2


def success_reward(sim: Optional[TabletopSim], result: StepResult) -> float:
    """Return 1 on the step the task succeeds, else 0 (ResiP's default)."""
    return 1.0 if result.success else 0.0


class SubtaskReward:
    """+1 for every newly completed sub-task of a multi-stage task, and +1 on success."""

    def __init__(self) -> None:
        self.completed = 0

    def reset(self, sim: Optional[TabletopSim], seed: Optional[int] = None) -> None:
        """Forget the sub-tasks of the previous episode."""
        self.completed = 0

    def __call__(self, sim: Optional[TabletopSim], result: StepResult) -> float:
        """Return the reward of this step."""
        done = int(result.info.get('stages_completed', 0))
        new, self.completed = max(done - self.completed, 0), max(done, self.completed)
        return float(new) + success_reward(sim, result)


class CostShapedReward:
    """
    The sparse reward plus the decrease of a cost of the scene (potential-based shaping).

    Each step pays ``(previous cost - cost) / unit``. A difference of
    potentials leaves the optimal policy unchanged (Ng, Harada and Russell,
    1999; exactly for undiscounted returns, up to the discount's
    ``1 - gamma`` otherwise) while the residual hears at once what a step did
    instead of only by the success, or its absence, at the end.
    """

    def __init__(self, cost: Callable[[TabletopSim], float], unit: float) -> None:
        self.cost_fn, self.unit = cost, unit
        self.cost: Optional[float] = None

    def reset(self, sim: TabletopSim, seed: Optional[int] = None) -> None:
        """Measure the new episode's starting cost."""
        self.cost = self.cost_fn(sim)

    def __call__(self, sim: TabletopSim, result: StepResult) -> float:
        """Return the reward of this step."""
        if self.cost is None:
            raise RuntimeError('a shaped reward needs reset(sim) at the start of every episode')
        cost = self.cost_fn(sim)
        gained, self.cost = self.cost - cost, cost
        return gained / self.unit + success_reward(sim, result)


def sparse_reward(task: Optional[str] = None) -> RewardFunction:
    """Return the sparse success reward (stateless: one function serves every env)."""
    return success_reward


def subtask_reward(task: Optional[str] = None) -> SubtaskReward:
    """Return a fresh sub-task bonus: a long task pays before its final success."""
    return SubtaskReward()


def shaped_reward(task: Optional[str] = None) -> CostShapedReward:
    """Pay the decrease of the task's goal distance: a weak base hears of every millimetre."""
    return CostShapedReward(lambda sim: sim.task.goal_distance(), SHAPING_METRES)


def upright_reward(task: Optional[str] = None) -> CostShapedReward:
    """
    Charge the growth of the task object's tilt; righting it earns the charge back.

    Aimed at the failure measured on peg_insert (``tools/failure_modes.py``:
    most failed episodes end with the peg toppled or held crooked): tipping
    the peg flat costs as much as an insertion earns.
    """
    return CostShapedReward(lambda sim: sim.task.tilt(), UPRIGHT_RADIANS)
