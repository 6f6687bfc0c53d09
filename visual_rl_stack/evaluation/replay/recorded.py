"""
What one episode bag recorded, step by step: the reference replayed outputs are scored on.

Read once per bag with the data set's stream alignment: the control steps
(``/joint_states`` stamps), the executed commands in the simulator's action
layout (and the expert's labels when the bag has them), sparse reward and
success per step, the cameras, the state layout the bag's observations make,
and which of the components can be evaluated on it at all.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from visual_rl_stack.data.bags import bag_topics, BagError
from visual_rl_stack.data.dataset import (ACTION_TOPICS, actions, Aligned, camera_views,
                                          read_streams, state_vectors)
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.msg_conversions import labelled_array_to_dict
from visual_rl_stack.sim.tasks import task_for_state

#: Topics read from the bag for scoring (camera images are played, not read here).
_SCORED = (topics.JOINT_STATES, topics.EE_POSE, topics.TASK_STATE, topics.TASK_SUCCESS,
           topics.TASK_REWARD, topics.TASK_INSTRUCTION, topics.GRIPPER_COMMAND,
           *ACTION_TOPICS.values())


@dataclass
class RecordedEpisode:
    """One bag's control steps and what was recorded at each (T steps)."""

    bag: Path
    topics: dict[str, str]
    stamps: np.ndarray
    views: list[str]
    #: (height, width) of the first camera's images; None without cameras.
    image_size: Optional[tuple[int, int]]
    instruction: str
    task: Optional[str]
    action_mode: Optional[str]
    state_labels: Optional[list[tuple[str, int]]]
    #: Executed commands at each step (NaN rows where the bag has none).
    action: np.ndarray
    #: The demonstrator's noise-free commands (bags with injected noise), else None.
    expert_action: Optional[np.ndarray]
    reward: np.ndarray
    success: np.ndarray
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """Return the number of control steps."""
        return len(self.stamps)

    @property
    def name(self) -> str:
        """Tell the episode's name: the bag folder's."""
        return self.bag.name

    @property
    def duration(self) -> float:
        """Tell the recorded seconds from the first to the last control step."""
        return float(self.stamps[-1] - self.stamps[0]) * 1e-9 if len(self) else 0.0

    @property
    def control_hz(self) -> float:
        """Return the control rate the steps were recorded at."""
        return 1e9 / float(np.median(np.diff(self.stamps))) if len(self) > 1 else 10.0

    @property
    def succeeded(self) -> bool:
        """Return whether the bag records success (``/task/success`` true at some step)."""
        return bool(self.success.any())

    @property
    def has_success(self) -> bool:
        """Return whether the bag holds ``/task/success`` at all."""
        return topics.TASK_SUCCESS in self.topics


def read_recorded(bag: Path) -> RecordedEpisode:
    """
    Read the scoring reference of ``bag``.

    Raises BagError for a bag that cannot be read (truncated, corrupt, not a
    bag) or that has fewer than 2 control steps; a bag without commands or
    task state reads with NaN actions or no state layout and a note saying so.
    """
    available = bag_topics(bag)
    if topics.JOINT_STATES not in available:
        raise BagError(f'bag {bag} has no {topics.JOINT_STATES}: there are no control steps '
                       'to replay')
    views = camera_views(available)
    streams = read_streams(bag, [*_SCORED, *(topics.expert_label_topic(t) for t in (
        topics.GRIPPER_COMMAND, *ACTION_TOPICS.values())),
        *(topics.camera_info_topic(v) for v in views[:1])])
    info = streams.get(topics.camera_info_topic(views[0])) if views else None
    steps = streams[topics.JOINT_STATES].times
    if len(steps) < 2:
        raise BagError(f'bag {bag} has fewer than 2 control steps ({topics.JOINT_STATES})')
    period = int(np.median(np.diff(steps)))
    aligned = Aligned(bag, streams, steps, period // 2)
    rows = np.arange(len(steps))
    notes: list[str] = []
    modes = [mode for mode, topic in ACTION_TOPICS.items() if topic in streams]
    mode = modes[0] if len(modes) == 1 else None
    if mode is None:
        notes.append(f'no recorded commands (one of {sorted(ACTION_TOPICS.values())}): '
                     'nothing to compare a policy with')
    executed = _commands(aligned, streams, mode, ACTION_TOPICS.get(mode), topics.GRIPPER_COMMAND,
                         steps, period)
    expert = None
    if mode and topics.expert_label_topic(ACTION_TOPICS[mode]) in streams:
        expert = _commands(aligned, streams, mode, topics.expert_label_topic(ACTION_TOPICS[mode]),
                           topics.expert_label_topic(topics.GRIPPER_COMMAND), steps, period)
    labels, task = None, None
    if topics.EE_POSE in streams and aligned.present(topics.EE_POSE, rows[:1]).all():
        task_state = aligned.at(topics.TASK_STATE, rows[:1], default=None)
        _, labels = state_vectors(aligned.at(topics.JOINT_STATES, rows[:1]),
                                  aligned.at(topics.EE_POSE, rows[:1]), task_state)
        if task_state[0] is not None:
            task = _task_of(labelled_array_to_dict(task_state[0]))
    else:
        notes.append(f'no {topics.EE_POSE} at the first step: no policy observation')
    after = np.minimum(rows + 1, len(steps) - 1)
    instruction = aligned.at(topics.TASK_INSTRUCTION, rows[-1:], default=None)[0]
    return RecordedEpisode(
        bag=Path(bag), topics=available, stamps=steps, views=views,
        image_size=(int(info.values[0].height), int(info.values[0].width)) if info else None,
        instruction=instruction.data if instruction else '', task=task, action_mode=mode,
        state_labels=labels, action=executed, expert_action=expert,
        reward=np.array([m.data if m else 0.0 for m in aligned.at(
            topics.TASK_REWARD, after, default=None)], dtype=np.float64),
        success=np.array([bool(m and m.data) for m in aligned.at(
            topics.TASK_SUCCESS, rows, default=None)], dtype=bool),
        notes=notes)


def _task_of(task_state: dict) -> Optional[str]:
    """Return the task whose privileged state the bag records (None if no task has it)."""
    try:
        return task_for_state(task_state)
    except ValueError:
        return None


def _commands(aligned: Aligned, streams: dict, mode: Optional[str], arm_topic: Optional[str],
              gripper_topic: str, steps: np.ndarray, period: int) -> np.ndarray:
    """Return the commands stamped at each step (NaN rows where arm or gripper is missing)."""
    width = {'delta': 7, 'absolute': 8}.get(mode, 7)
    out = np.full((len(steps), width), np.nan)
    if mode is None or arm_topic not in streams or gripper_topic not in streams:
        return out
    arm = streams[arm_topic]
    index = {int(t): i for i, t in enumerate(arm.times)}
    rows = np.array([r for r, t in enumerate(steps) if int(t) in index], dtype=int)
    rows = rows[aligned.present(gripper_topic, rows)] if len(rows) else rows
    if len(rows):
        out[rows] = actions(mode, [arm.values[index[int(steps[r])]] for r in rows],
                            aligned.at(gripper_topic, rows), period * 1e-9)
    return out
