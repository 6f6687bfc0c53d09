"""
The world-model node's core: where the arm stands in the plan, step by step, without ROS.

Per control step it gets the joint positions (arm and fingers), the TCP
position, the task's privileged state when the simulator publishes one, and
the camera views. It answers with the open stage (index and name), the plan's
progress (0-1), the staged reward the world model predicts from the views,
whether the step is a keyframe, and a diagnostic.

State sources: ``privileged`` judges the stages on the simulator's object
state (:mod:`.planning.staged_reward`); ``world_model`` reads progress from
the world model's reward head (the MAE's staged-progress prediction) and
maps it onto the plan's stages, for a real arm without object state. The
predicted reward always comes from the world model when one is loaded.
Bad input never produces a number: NaN joints, a plan that cannot be made,
missing views or object state give a diagnostic and leave the affected
outputs out (None) for that step.
"""

from dataclasses import dataclass
import time
from typing import Callable, Optional

import numpy as np
import torch
from visual_rl_stack.sim.tasks import make_task, Task, task_for_state

from .keyframes import KeyframeDetector
from .mae.model import MultiViewMAE
from .planning.plan import Plan, PlanError
from .planning.stage_checks import SceneState
from .planning.staged_reward import StagedReward

OK, WARN, ERROR = 'ok', 'warn', 'error'
SOURCES = ('privileged', 'world_model')


def as_floats(task_state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return a task state as float64 arrays (what the tasks' geometry expects)."""
    return {k: np.asarray(v, dtype=float) for k, v in task_state.items()}


@dataclass(frozen=True)
class MonitorUpdate:
    """One step's answer; None where that output cannot be trusted this step."""

    stage_index: Optional[int]
    stage_name: Optional[str]
    progress: Optional[float]
    reward: Optional[float]
    keyframe: Optional[bool]
    level: str
    message: str
    seconds: float

    @property
    def stage_label(self) -> Optional[str]:
        """Return '<index> <name>' (index from 1; 'done' past the last stage)."""
        if self.stage_index is None:
            return None
        return f'{self.stage_index} {self.stage_name}'


class WorldModelMonitor:
    """Tracks one episode at a time (module doc)."""

    def __init__(self, planner: Callable[..., Plan], source: str = 'privileged',
                 mae: Optional[MultiViewMAE] = None, control_hz: float = 10.0):
        """
        Judge steps with ``planner``'s stages; ``mae`` predicts the reward.

        The task is told by the fields of its privileged state
        (:func:`visual_rl_stack.sim.tasks.task_for_state`), so a simulator
        switching tasks is followed; the ``world_model`` source needs ``mae``.
        """
        if source not in SOURCES:
            raise ValueError(f'state source must be one of {SOURCES}, got {source!r}')
        self.planner, self.source, self.mae = planner, source, mae
        self.detector = KeyframeDetector(control_hz)
        self.task: Optional[Task] = None
        self.reward: Optional[StagedReward] = None
        self.plan_error: Optional[str] = 'no instruction yet'
        self.instruction: Optional[str] = None
        self.planned = False
        self.start: Optional[SceneState] = None

    @property
    def views(self) -> tuple[str, ...]:
        """Return the views the world model reads (none without one)."""
        return () if self.mae is None else tuple(self.mae.config.views)

    @property
    def image_size(self) -> Optional[int]:
        """Return the world model's view size (None without one)."""
        return None if self.mae is None else self.mae.config.image_size

    def new_episode(self, instruction: str) -> None:
        """Forget the last episode; ``instruction`` is planned at the next step."""
        self.instruction, self.planned, self.start = instruction, False, None
        self.reward, self.plan_error = None, 'not planned yet'
        self.detector.reset()

    def _follow_task(self, task_state: Optional[dict[str, np.ndarray]],
                     problems: list[tuple[str, str]]) -> None:
        """Tell the task by its state's fields; a new task is planned afresh."""
        if task_state is None:
            return
        try:
            name = task_for_state(task_state)
        except ValueError as error:
            problems.append((ERROR, f'task state: {error}'))
            return
        if self.task is None or self.task.name != name:
            self.task, self.planned, self.start = make_task(name), False, None

    def _plan(self, task_state: Optional[dict[str, np.ndarray]]) -> None:
        """Plan the instruction, grounded in the task's objects when they are known."""
        self.planned = True
        if self.source == 'privileged' and (self.task is None or task_state is None):
            self.planned, self.plan_error = False, 'waiting for /task/state to plan'
            return
        if self.source == 'world_model' and self.mae is None:
            self.plan_error = "the 'world_model' state source needs a world model"
            return
        try:
            objects = (self.task.scene_objects(as_floats(task_state))
                       if self.task is not None and task_state is not None else None)
            self.reward, self.plan_error = StagedReward(self.planner(self.instruction,
                                                                     objects)), None
        except (PlanError, ValueError, KeyError) as error:
            self.reward, self.plan_error = None, f'cannot plan {self.instruction!r}: {error}'

    def update(self, joint_positions: np.ndarray, gripper_width: float,
               ee_position: np.ndarray, task_state: Optional[dict[str, np.ndarray]] = None,
               images: Optional[dict[str, np.ndarray]] = None) -> MonitorUpdate:
        """Judge one control step (module doc)."""
        start = time.perf_counter()
        problems: list[tuple[str, str]] = []
        keyframe = None
        try:
            keyframe = self.detector.update(joint_positions, gripper_width) is not None
        except ValueError as error:
            problems.append((ERROR, f'joints: {error}'))
        self._follow_task(task_state, problems)
        if not self.planned and self.instruction is not None:
            self._plan(task_state)
        finite_pose = bool(np.all(np.isfinite(ee_position))) and np.isfinite(gripper_width)
        reward = self._predicted_reward(images, problems)
        index = name = progress = None
        if self.reward is None:
            problems.append((ERROR if self.planned else WARN, self.plan_error or 'no plan'))
        elif not finite_pose:
            problems.append((ERROR, 'the TCP position or finger width is not finite'))
        elif self.source == 'privileged':
            index, name, progress = self._privileged(ee_position, gripper_width, task_state,
                                                     problems)
        elif reward is not None:
            index, name, progress = self._from_progress(reward)
        level = ERROR if any(lv == ERROR for lv, _ in problems) else (WARN if problems else OK)
        message = '; '.join(m for _, m in problems) or (
            f'stage {index}/{len(self.reward.stages)} {name}' if self.reward and index else 'ok')
        return MonitorUpdate(index, name, progress, reward, keyframe, level, message,
                             time.perf_counter() - start)

    def _predicted_reward(self, images: Optional[dict[str, np.ndarray]],
                          problems: list[tuple[str, str]]) -> Optional[float]:
        """Return the world model's staged progress of the views, or None (with a problem)."""
        if self.mae is None:
            return None
        missing = [v for v in self.views if images is None or v not in images]
        if missing:
            problems.append((WARN, f'no predicted reward: views {missing} missing'))
            return None
        size = self.image_size
        frames = [np.asarray(images[v]) for v in self.views]
        if any(f.shape != (size, size, 3) for f in frames):
            problems.append((WARN, f'no predicted reward: views must be {size}x{size} RGB, got '
                             f'{[f.shape for f in frames]}'))
            return None
        batch = torch.from_numpy(np.stack(frames)[None]).permute(0, 1, 4, 2, 3).float() / 255.0
        return float(np.clip(self.mae.predict_progress(batch)[0], 0.0, 1.0))

    def _privileged(self, ee_position: np.ndarray, gripper_width: float,
                    task_state: Optional[dict[str, np.ndarray]],
                    problems: list[tuple[str, str]]) -> tuple:
        """Return (index, name, progress) judged on the privileged state, or Nones."""
        if task_state is None:
            problems.append((WARN, 'no task state yet (privileged source)'))
            return None, None, None
        try:
            objects = self.task.scene_objects(as_floats(task_state))
        except KeyError as error:
            problems.append((ERROR, f'task state lacks {error}'))
            return None, None, None
        state = SceneState(np.asarray(ee_position, float), float(gripper_width),
                           {o.name: o for o in objects})
        if self.start is None:
            self.start = state
        try:
            status = self.reward.status(state, self.start)
        except KeyError as error:
            problems.append((ERROR, f'the plan names {error}, which the task state lacks'))
            return None, None, None
        count = len(self.reward.stages)
        if status.stage is None:
            return count + 1, 'done', 1.0
        return status.stage.index, status.stage.name, float(status.progress)

    def _from_progress(self, progress: float) -> tuple:
        """Return (index, name, progress) with the predicted progress spread over the stages."""
        stages = self.reward.stages
        if progress >= 1.0:
            return len(stages) + 1, 'done', 1.0
        stage = stages[min(int(progress * len(stages)), len(stages) - 1)]
        return stage.index, stage.name, progress
