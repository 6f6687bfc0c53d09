"""
Reward functions of other packages, registered by import path and loaded on first use.

The residual RL environment has its own built-in rewards; a reward that
needs a learner (the KAGI keypoint-affordance reward of ``vlm_affordance``)
registers here as ``'module:function'``, as policy kinds do in
:mod:`.policy`, so the environment opens it by name without importing it.
A factory takes the task name and keyword options and returns a fresh
reward function ``(sim, step_result) -> float``, optionally with
``reset(sim, seed)``.
"""

import importlib
from typing import Any, Callable

#: Reward name -> ``'module:function'`` of its factory ``(task, **options) -> reward function``.
REWARD_ENTRY_POINTS: dict[str, str] = {
    'kagi': 'visual_rl_stack.vlm_affordance.episode_reward:kagi_reward',
    'staged': 'visual_rl_stack.world_model.planning.sim_reward:staged_reward',
}


def combine(sparse: float, dense: float) -> float:
    """Return the sparse reward when it is non-zero, else the dense one (KAGI's rule)."""
    return float(sparse) if sparse != 0 else float(dense)


def register_reward(name: str, entry_point: str) -> None:
    """Register (or replace) the ``'module:function'`` factory of reward ``name``."""
    if ':' not in entry_point:
        raise ValueError(f'entry point {entry_point!r} must read "module:function"')
    REWARD_ENTRY_POINTS[name] = entry_point


def reward_factory(name: str) -> Callable[..., Any]:
    """Import and return the factory registered for ``name``; ValueError naming the known ones."""
    if name not in REWARD_ENTRY_POINTS:
        raise ValueError(f'unknown registered reward {name!r}; known: '
                         f'{", ".join(sorted(REWARD_ENTRY_POINTS))}')
    module_name, function = REWARD_ENTRY_POINTS[name].split(':')
    return getattr(importlib.import_module(module_name), function)
