"""
Every reward by name: the one registry, loaded by import path on first use.

Each reward is registered once, as the policy kinds are in :mod:`.policy`:
its factory's ``'module:function'`` (imported only when the reward is made,
so this shared base imports no learner), a one-line description the
commands' ``--help`` shows, the options its factory takes, what a task must
define for it and what else it offers (:data:`LEVEL`, :data:`RECORDED`). A
factory takes the task name and keyword options and returns a fresh reward
function ``(sim, step_result) -> float``, optionally with ``reset(sim, seed)``.
Every command that takes a reward name lists :func:`reward_names`, and opens
the reward with :func:`make_reward`. Earlier names stay as deprecated
aliases (:data:`REWARD_ALIASES`) so old run folders and configs still open.
"""

from dataclasses import dataclass, field
import importlib
from typing import Any, Callable, Iterable, Mapping, Optional
import warnings

from visual_rl_stack.sim.config import check_task_name
from visual_rl_stack.sim.tasks import has_goal_distance, has_tilt, TASKS

#: Trait: the reward shows a dense level (``level``, ``planned``, ``diagnostic``)
#: that ``vrl reward-quality`` judges.
LEVEL = 'level'
#: Trait: a recorded episode's success and task state give the reward, so the
#: world model relabels its demonstration bags with it.
RECORDED = 'recorded'

SPARSE = 'sparse'
SUBTASKS = 'subtasks'
PLANNER_STAGES = 'planner_stages'
KAGI = 'kagi'


@dataclass(frozen=True)
class TaskNeed:
    """Something a reward measures that not every task defines, and the test of a task for it."""

    what: str
    defines: Callable[[Any], bool]


GOAL_DISTANCE = TaskNeed('a goal distance', has_goal_distance)
TILT = TaskNeed('a tilt', has_tilt)


@dataclass(frozen=True)
class RewardSpec:
    """One registered reward: where its factory is and what a caller must know to choose it."""

    entry_point: str
    description: str
    options: tuple[str, ...] = ()
    needs: Optional[TaskNeed] = None
    traits: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        """Refuse an entry point that cannot be loaded by import path."""
        if ':' not in self.entry_point:
            raise ValueError(f'entry point {self.entry_point!r} must read "module:function"')


_SIM = 'visual_rl_stack.sim.rewards'
#: Reward name -> its :class:`RewardSpec`; add one with :func:`register_reward`.
REWARDS: dict[str, RewardSpec] = {
    SPARSE: RewardSpec(f'{_SIM}:sparse_reward', '+1 on the step the task succeeds',
                       traits=frozenset({RECORDED})),
    SUBTASKS: RewardSpec(f'{_SIM}:subtask_reward',
                         'sparse plus +1 per newly completed sub-task of a multi-stage task '
                         '(privileged simulator state)'),
    'shaped': RewardSpec(f'{_SIM}:shaped_reward',
                         "sparse plus the decrease of the task's goal distance, 1 per 5 cm",
                         needs=GOAL_DISTANCE),
    'upright': RewardSpec(f'{_SIM}:upright_reward',
                          "sparse minus the growth of the task object's tilt, 1 per 90 degrees",
                          needs=TILT),
    KAGI: RewardSpec(
        'visual_rl_stack.vlm_affordance.episode_reward:kagi_reward',
        'sparse when non-zero, else progress along keypoint-affordance waypoints (KAGI)',
        options=('backend', 'model', 'views', 'width', 'height', 'log_path', 'epsilon',
                 'alpha', 'track', 'potential', 'gamma'),
        traits=frozenset({LEVEL})),
    PLANNER_STAGES: RewardSpec(
        'visual_rl_stack.world_model.planning.sim_reward:staged_reward',
        "sparse when non-zero, else progress through the stage planner's stages of the "
        'instruction (RoboHorizon)',
        options=('planner', 'model', 'alpha', 'potential', 'gamma', 'tolerances', 'weights'),
        traits=frozenset({LEVEL, RECORDED})),
}

#: Earlier reward names -> today's, kept so old run folders, configs and commands still work.
REWARD_ALIASES: dict[str, str] = {'stages': SUBTASKS, 'staged': PLANNER_STAGES}


def combine(sparse: float, dense: float) -> float:
    """Return the sparse reward when it is non-zero, else the dense one (KAGI's rule)."""
    return float(sparse) if sparse != 0 else float(dense)


def register_reward(name: str, entry_point: str, description: str,
                    options: Iterable[str] = (), needs: Optional[TaskNeed] = None,
                    traits: Iterable[str] = ()) -> None:
    """Register (or replace) reward ``name``: its ``'module:function'`` factory and its facts."""
    REWARDS[name] = RewardSpec(entry_point, description, tuple(options), needs,
                               frozenset(traits))


def reward_names(trait: Optional[str] = None) -> list[str]:
    """Return the registered reward names, sorted; with ``trait``, those that offer it."""
    return sorted(n for n, spec in REWARDS.items() if trait is None or trait in spec.traits)


def canonical_reward(name: str) -> str:
    """Return today's name of reward ``name``, warning once per call for an old one."""
    if name in REWARD_ALIASES:
        new = REWARD_ALIASES[name]
        warnings.warn(f'reward {name!r} is now called {new!r}; the old name is deprecated',
                      FutureWarning, stacklevel=2)
        return new
    return name


def reward_spec(name: str) -> RewardSpec:
    """Return the spec of reward ``name`` (or an alias); ValueError naming the known ones."""
    name = canonical_reward(name)
    if name not in REWARDS:
        raise ValueError(f'unknown reward {name!r}; known: {", ".join(reward_names())}')
    return REWARDS[name]


def reward_offering(name: str, trait: str) -> str:
    """Return today's name of a reward that offers ``trait``; ValueError naming those that do."""
    name = canonical_reward(name)
    able = reward_names(trait)
    if name not in able:
        raise ValueError(f'reward must be one of {", ".join(able)} here, got {name!r}')
    return name


def reward_help(names: Optional[Iterable[str]] = None) -> str:
    """Return ``name: description`` for ``names`` (default: every reward), for ``--help``."""
    return '; '.join(f'{n}: {REWARDS[n].description}'
                     for n in (reward_names() if names is None else names))


def check_reward(name: str, task: Optional[str] = None,
                 options: Optional[Mapping[str, Any]] = None) -> str:
    """
    Return the reward's current name once name, task and options are known to fit.

    Raises ValueError for an unknown reward, an unknown task, a task that does
    not define what the reward measures, or an option the reward does not take.
    Imports nothing, so a caller checks once before starting worker processes.
    """
    name = canonical_reward(name)
    spec = reward_spec(name)
    if task is not None:
        check_task_name(task)
        if spec.needs is not None and not spec.needs.defines(TASKS[task]):
            able = sorted(n for n, cls in TASKS.items() if spec.needs.defines(cls))
            raise ValueError(f'the {name} reward needs a task with {spec.needs.what} '
                             f'({", ".join(able)}), not {task!r}')
    unknown = sorted(set(options or {}) - set(spec.options))
    if unknown:
        takes = ', '.join(spec.options) or 'no options'
        raise ValueError(f'the {name} reward takes {takes}; not {", ".join(unknown)}')
    return name


def make_reward(name: str, task: Optional[str] = None,
                options: Optional[Mapping[str, Any]] = None) -> Any:
    """Return a fresh reward function by name (:func:`check_reward`'s ValueErrors first)."""
    name = check_reward(name, task, options)
    module_name, function = REWARDS[name].entry_point.split(':')
    factory = getattr(importlib.import_module(module_name), function)
    return factory(task, **dict(options or {}))
