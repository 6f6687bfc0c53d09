"""
The environment residual RL trains in: the task simulator seen through the BC state layout.

:class:`ResidualTaskEnv` steps a :class:`TabletopSim` with physical actions
(what the base policy outputs) and observes the state vector the BC policy
was trained on (:func:`visual_rl_stack.core.observation.sim_observation`), so base, residual and
evaluation share one definition of the state. The reward is a pluggable
function of the simulator and the step result (:data:`REWARD_FUNCTIONS`);
the default is ResiP's sparse reward. Rewards of other packages (``kagi``,
the keypoint-affordance reward) are registered by import path in
:mod:`visual_rl_stack.core.rewards` and opened by name, with options, so this
module imports no other learner. A reward function with a ``reset(sim, seed)``
method is told of every new episode and its seed, after the simulator has reset.

Seeds: ``reset(seed=s)`` starts episode ``s`` exactly (evaluation); unseeded
resets draw episode seeds at or above :data:`TRAIN_SEED_FLOOR`, so training
episodes never coincide with the evaluation and validation seeds, which
are small numbers by convention.

:func:`make_residual_envs` runs copies in worker processes with gymnasium's
same-step autoreset: the observation returned with ``terminated`` or
``truncated`` is already the next episode's first.
"""

from functools import partial
from typing import Any, Callable, Optional

import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
import numpy as np
from visual_rl_stack.core.observation import sim_observation
from visual_rl_stack.core.rewards import REWARD_ENTRY_POINTS, reward_factory
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.scene import StepResult, TabletopSim
from visual_rl_stack.sim.tasks import has_goal_distance, has_tilt, make_task, TASKS
from visual_rl_stack.sim.vector_env import CONTEXT, TRAIN_SEED_FLOOR, TRAIN_SEED_SPAN

RewardFunction = Callable[[TabletopSim, StepResult], float]


def sparse_reward(sim: TabletopSim, result: StepResult) -> float:
    """Return 1 on the step the task succeeds, else 0 (ResiP's default)."""
    return 1.0 if result.success else 0.0


class StageReward:
    """+1 for every newly completed stage of a multi-stage task, and +1 on success."""

    def __init__(self) -> None:
        self.completed = 0

    def reset(self, sim: TabletopSim, seed: Optional[int] = None) -> None:
        """Forget the stages of the previous episode."""
        self.completed = 0

    def __call__(self, sim: TabletopSim, result: StepResult) -> float:
        """Return the reward of this step."""
        stages = int(result.info.get('stages_completed', 0))
        new, self.completed = max(stages - self.completed, 0), max(stages, self.completed)
        return float(new) + sparse_reward(sim, result)


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
        return gained / self.unit + sparse_reward(sim, result)


#: Metres of goal distance the shaped reward pays as much for as one success.
SHAPING_METRES = 0.05
#: Lean (rad) the upright reward charges as much for as one success pays: lying flat.
UPRIGHT_RADIANS = np.pi / 2


def shaped_reward() -> CostShapedReward:
    """Pay the decrease of the task's goal distance: a weak base hears of every millimetre."""
    return CostShapedReward(lambda sim: sim.task.goal_distance(), SHAPING_METRES)


def upright_reward() -> CostShapedReward:
    """
    Charge the growth of the task object's tilt; righting it earns the charge back.

    Aimed at the failure measured on peg_insert (``tools/failure_modes.py``:
    most failed episodes end with the peg toppled or held crooked): tipping
    the peg flat costs as much as an insertion earns.
    """
    return CostShapedReward(lambda sim: sim.task.tilt(), UPRIGHT_RADIANS)


#: Reward name -> factory of a reward function (a fresh one per environment).
REWARD_FUNCTIONS: dict[str, Callable[[], RewardFunction]] = {
    'sparse': lambda: sparse_reward,
    'stages': StageReward,
    'shaped': shaped_reward,
    'upright': upright_reward,
}

#: Reward name -> (what it measures, the test of whether a task defines it).
REWARD_NEEDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    'shaped': ('a goal distance', has_goal_distance),
    'upright': ('a tilt', has_tilt),
}


def reward_names() -> list[str]:
    """Return every reward name: the built-in ones and the registered ones."""
    return sorted({*REWARD_FUNCTIONS, *REWARD_ENTRY_POINTS})


def make_reward(name: str, task: Optional[str] = None,
                options: Optional[dict[str, Any]] = None) -> RewardFunction:
    """
    Return a new reward function by name; ``options`` go to a registered reward's factory.

    Unknown names raise ValueError, and so does a reward that measures
    something (:data:`REWARD_NEEDS`) the ``task`` (when given) does not define.
    """
    if name not in REWARD_FUNCTIONS and name in REWARD_ENTRY_POINTS:
        return reward_factory(name)(task, **(options or {}))
    if name not in REWARD_FUNCTIONS:
        raise ValueError(f'unknown reward {name!r}; known: {", ".join(reward_names())}')
    if name in REWARD_NEEDS and task is not None:
        what, defines = REWARD_NEEDS[name]
        if not defines(make_task(task)):
            able = sorted(n for n, cls in TASKS.items() if defines(cls))
            raise ValueError(f'the {name} reward needs a task with {what} '
                             f'({", ".join(able)}), not {task!r}')
    return REWARD_FUNCTIONS[name]()


class ResidualTaskEnv(gym.Env):
    """One task in physical action units with the BC state as observation (module doc)."""

    def __init__(self, task: str, action_mode: str = 'delta', reward: str = 'sparse',
                 max_episode_steps: Optional[int] = None,
                 reward_options: Optional[dict[str, Any]] = None):
        """Create a camera-less simulator for ``task``."""
        self.sim = TabletopSim(SimConfig(task=task, action_mode=action_mode, cameras=(),
                                         max_episode_steps=max_episode_steps))
        self.reward_fn = make_reward(reward, task, reward_options)
        low, high = self.sim.action_space_bounds()
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32))
        self.sim.reset(seed=0)
        size = sim_observation(self.sim)[0].shape
        self.observation_space = spaces.Box(-np.inf, np.inf, size, np.float32)

    @property
    def max_episode_steps(self) -> int:
        """Return the step limit of an episode."""
        return self.sim.max_episode_steps

    def reset(self, *, seed: Optional[int] = None,
              options: Optional[dict[str, Any]] = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start episode ``seed``, or a fresh training seed when None."""
        super().reset(seed=seed)
        episode_seed = (seed if seed is not None
                        else TRAIN_SEED_FLOOR + int(self.np_random.integers(TRAIN_SEED_SPAN)))
        self.sim.reset(seed=episode_seed)
        if hasattr(self.reward_fn, 'reset'):
            self.reward_fn.reset(self.sim, episode_seed)
        return sim_observation(self.sim)[0], {'episode_seed': episode_seed, 'success': False}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a physical action for one control step."""
        result = self.sim.step(np.asarray(action, dtype=np.float64))
        reward = float(self.reward_fn(self.sim, result))
        info = {'success': bool(result.success)}
        return (sim_observation(self.sim)[0], reward, bool(result.terminated),
                bool(result.truncated), info)

    def close(self) -> None:
        """Release the simulator."""
        self.sim.close()


def make_residual_envs(task: str, num_envs: int, action_mode: str = 'delta',
                       reward: str = 'sparse', max_episode_steps: Optional[int] = None,
                       asynchronous: bool = True,
                       reward_options: Optional[dict[str, Any]] = None) -> gym.vector.VectorEnv:
    """
    Return ``num_envs`` :class:`ResidualTaskEnv` copies with same-step autoreset (not reset yet).

    Asynchronous envs run one spawned worker process each; ``reward_options``
    go to a registered reward's factory in each of them.
    """
    if num_envs < 1:
        raise ValueError(f'num_envs must be at least 1, got {num_envs}')
    if reward not in REWARD_ENTRY_POINTS:
        make_reward(reward, task)  # fail here, not in every worker (a registered one may be slow)
    factory = partial(ResidualTaskEnv, task, action_mode, reward, max_episode_steps,
                      reward_options)
    fns = [factory] * num_envs
    if asynchronous:
        return gym.vector.AsyncVectorEnv(fns, context=CONTEXT,
                                         autoreset_mode=AutoresetMode.SAME_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
