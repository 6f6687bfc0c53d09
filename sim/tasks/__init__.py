"""Tabletop tasks and their registry."""

from typing import Iterable

from visual_rl_stack.sim.config import check_task_name

from .base import has_goal_distance, has_tilt, Task
from .lift import LiftTask
from .peg_insert import PegInsertTask
from .pick_place import PickPlaceTask
from .push import PushTask
from .reach import ReachTask
from .stack import Stack3Task, StackTask

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (ReachTask, LiftTask, PushTask, PickPlaceTask, StackTask, Stack3Task,
                PegInsertTask)
}


def make_task(name: str) -> Task:
    """Return a fresh task instance, or raise ValueError listing the known names."""
    check_task_name(name)
    return TASKS[name]()


def task_for_state(fields: Iterable[str]) -> str:
    """Return the task whose privileged state has exactly ``fields``; ValueError if none."""
    wanted = set(fields)
    for name, cls in TASKS.items():
        if set(cls.state_fields) == wanted:
            return name
    raise ValueError(f'no task has the state fields {sorted(wanted)}')


__all__ = ['TASKS', 'Task', 'has_goal_distance', 'has_tilt', 'make_task', 'task_for_state']
