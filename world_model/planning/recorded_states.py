"""
Scene states of recorded episodes, so that bags get the staged reward offline.

A bag recorded in the simulator carries the task's privileged state on
``/task/state``; the task turns each step's fields back into named scene
objects (:meth:`visual_rl_stack.sim.tasks.Task.scene_objects`), and the
recorded end-effector position and finger width complete the state the
stages are judged on. Bags without task state (a real arm) need another
state source and are refused with the fields they lack.
"""

from typing import Sequence

from visual_rl_stack.data.dataset import Episode
from visual_rl_stack.sim.tasks import make_task

from .plan import Plan
from .stage_checks import SceneState, StageTolerances
from .staged_reward import StagedReward, StagedWeights, StageStatus


def episode_scene_states(episode: Episode, task_name: str) -> list[SceneState]:
    """Return the scene state at every control step of a recorded ``task_name`` episode."""
    task = make_task(task_name)
    names = [label for label, _ in episode.state_labels]
    try:
        fields = {name: episode.field(name) for name in names
                  if name not in ('ee_position', 'ee_orientation', 'gripper_width',
                                  'joint_positions')}
        ee, width = episode.field('ee_position'), episode.field('gripper_width')[:, 0]
        states = []
        for t in range(len(episode)):
            objects = task.scene_objects({k: v[t].astype(float) for k, v in fields.items()})
            states.append(SceneState(ee[t], float(width[t]), {o.name: o for o in objects}))
    except KeyError as error:
        raise ValueError(f'episode {episode.name} lacks the {task_name} state the stages need '
                         f'({error}); its fields: {names}') from None
    return states


def episode_statuses(episode: Episode, task_name: str, plan: Plan,
                     tolerances: StageTolerances = StageTolerances(),
                     weights: StagedWeights = StagedWeights()) -> Sequence[StageStatus]:
    """Return where every step of a recorded episode stands in ``plan``."""
    states = episode_scene_states(episode, task_name)
    reward = StagedReward(plan, tolerances, weights)
    return [reward.status(state, states[0]) for state in states]
