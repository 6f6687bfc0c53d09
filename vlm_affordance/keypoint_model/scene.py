"""
Randomised, labelled tabletop scenes: the keypoint model's training and evaluation episodes.

A scene is one task reset at one seed with every visual randomisation the
simulator offers switched on (random light, camera jitter, a background that
cycles through plain, textured and distractor clutter by seed) and its
objects painted in named colours: the task's own colours for a quarter of the
seeds, distinct colours drawn from :data:`PALETTE` (each channel jittered by
up to 0.06) otherwise. The simulator's ``object_colors`` switch paints
arbitrary RGB that no instruction could name, so scenes paint named colours
themselves instead.

Labels come from privileged state, at collection time only
(:func:`keypoint_truth`): the grasp point is the centre of the top face of
the object to move; the target point is where it must go: the top-face centre
of the lower cube (stack, stack3), the centre of the target disc
(pick_place) or goal circle (push), the top centre of the hole (peg_insert)
and, for lift, 10 cm above the cube's top-face centre (the model points at
the top face and says ``height`` 0.10).
"""

from dataclasses import dataclass
import random
from typing import Mapping, Optional, Sequence

import numpy as np
import pybullet as pb
from visual_rl_stack.sim.cameras import CameraFrame
from visual_rl_stack.sim.config import (CameraSpec, default_cameras, RandomizationConfig,
                                        SimConfig)
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.tasks.lift import CUBE_HALF, LIFT_HEIGHT
from visual_rl_stack.sim.tasks.peg_insert import PEG_HALF_HEIGHT
from visual_rl_stack.sim.tasks.push import BLOCK_HALF

from .config import TASKS
from .language import COLOR_NAMES, Instruction, instructions

#: RGB of each colour name instructions use.
PALETTE: Mapping[str, tuple[float, float, float]] = {
    'red': (0.85, 0.15, 0.15), 'green': (0.2, 0.7, 0.25), 'blue': (0.2, 0.35, 0.85),
    'yellow': (0.9, 0.8, 0.2), 'orange': (0.95, 0.5, 0.1), 'purple': (0.55, 0.25, 0.75)}
#: The colours each task builds its objects with (roles as in :func:`.language.instructions`).
DEFAULT_COLORS: Mapping[str, Mapping[str, str]] = {
    'lift': {'object': 'red'},
    'push': {'object': 'blue', 'goal': 'yellow'},
    'pick_place': {'object': 'green', 'goal': 'blue'},
    'stack': {'cube0': 'red', 'cube1': 'green'},
    'stack3': {'cube0': 'red', 'cube1': 'green', 'cube2': 'blue'},
    'peg_insert': {'object': 'red', 'goal': 'yellow'},
}
BACKGROUNDS = ('plain', 'textured', 'distractors')
VIEWS = ('front', 'side')
DEFAULT_SHARE = 0.25
COLOR_JITTER = 0.06
#: How far above the grasped top face the lift target lies (the cube centre then clears
#: the task's 10 cm success height).
LIFT_TARGET_HEIGHT = LIFT_HEIGHT
#: Height of the flat goal discs' top face above the table.
DISC_TOP = 0.001


@dataclass
class Scene:
    """One rendered episode start: its views, its colours, and the privileged state."""

    task: str
    seed: int
    frames: Mapping[str, CameraFrame]
    colors: Mapping[str, str]
    state: Mapping[str, np.ndarray]

    def instructions(self) -> list[Instruction]:
        """Return every instruction of this scene, the task's own phrasing first."""
        return instructions(self.task, self.colors)


@dataclass(frozen=True)
class Truth:
    """The privileged keypoints of one instruction: world points and the target's height."""

    grasp: np.ndarray
    target: np.ndarray
    target_height: float


def top_points(task: str, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the world point of every role: an object's top-face centre, a goal's centre."""
    lift = np.array([0.0, 0.0, 1.0])
    if task.startswith('stack'):
        return {key[:-len('_position')]: state[key] + CUBE_HALF * lift
                for key in state if key.endswith('_position')}
    if task == 'lift':
        return {'object': state['cube_position'] + CUBE_HALF * lift}
    if task == 'push':
        return {'object': state['block_position'] + BLOCK_HALF * lift,
                'goal': state['goal_position'] + DISC_TOP * lift}
    if task == 'pick_place':
        return {'object': state['cube_position'] + CUBE_HALF * lift,
                'goal': state['target_position'] + DISC_TOP * lift}
    if task == 'peg_insert':
        return {'object': state['peg_position'] + PEG_HALF_HEIGHT * lift,
                'goal': state['hole_position'].copy()}
    raise ValueError(f'the keypoint model knows no task {task!r}; known: {", ".join(TASKS)}')


def keypoint_truth(task: str, state: Mapping[str, np.ndarray],
                   instruction: Instruction) -> Truth:
    """Return the grasp and target an instruction asks for in a scene's privileged state."""
    points = top_points(task, state)
    grasp = points[instruction.grasp]
    if task == 'lift':
        return Truth(grasp, grasp + (0.0, 0.0, LIFT_TARGET_HEIGHT), LIFT_TARGET_HEIGHT)
    return Truth(grasp, points[instruction.target], 0.0)


def project(frame: CameraFrame, point: np.ndarray) -> tuple[float, float, float]:
    """Return pixel ``(u, v)`` of a world point in ``frame`` and its depth along the axis."""
    rotation, origin = frame.T_world_camera[:3, :3], frame.T_world_camera[:3, 3]
    x, y, z = rotation.T @ (np.asarray(point, dtype=np.float64) - origin)
    return (frame.K[0, 0] * x / z + frame.K[0, 2], frame.K[1, 1] * y / z + frame.K[1, 2],
            float(z))


def in_image(frame: CameraFrame, u: float, v: float) -> bool:
    """Return whether pixel ``(u, v)`` lies in the frame's image."""
    return -0.5 <= u <= frame.width - 0.5 and -0.5 <= v <= frame.height - 0.5


class SceneMaker:
    """Resets one simulator per background and renders labelled scenes of any task."""

    def __init__(self, views: Sequence[str] = VIEWS, randomize: bool = True,
                 cameras: Optional[Sequence[CameraSpec]] = None):
        """Remember the views; simulators are built when a background is first used."""
        self.views = tuple(views)
        self.randomize = randomize
        self.cameras = tuple(cameras) if cameras is not None else default_cameras()
        self.sims: dict[str, TabletopSim] = {}

    def _sim(self, task: str, background: str) -> TabletopSim:
        """Return the simulator of ``background``, switched to ``task``."""
        sim = self.sims.get(background)
        if sim is None:
            randomization = (RandomizationConfig(lighting=True, camera_jitter=True,
                                                 background=background)
                             if self.randomize else RandomizationConfig())
            config = SimConfig(task=task, cameras=self.cameras, randomization=randomization)
            sim = self.sims[background] = TabletopSim(config)
        return sim

    def make(self, task: str, seed: int) -> Scene:
        """Return the scene of ``task`` at ``seed`` (the same seed always gives the same scene)."""
        if task not in TASKS:
            raise ValueError(f'the keypoint model knows no task {task!r}; '
                             f'known: {", ".join(TASKS)}')
        background = BACKGROUNDS[seed % len(BACKGROUNDS)] if self.randomize else 'plain'
        sim = self._sim(task, background)
        sim.reset(seed=seed, task=task)
        colors = self._paint(sim, task, seed)
        return Scene(task, seed, sim.render(self.views), colors, sim.task_state())

    def _paint(self, sim: TabletopSim, task: str, seed: int) -> dict[str, str]:
        """Paint the task's objects for this seed; return role -> colour name."""
        rng = random.Random(f'{task}:{seed}')
        roles = dict(DEFAULT_COLORS[task])
        if self.randomize and rng.random() >= DEFAULT_SHARE:
            roles = dict(zip(roles, rng.sample(COLOR_NAMES, len(roles))))
        jitter = np.random.default_rng(rng.getrandbits(32))
        for role, name in roles.items():
            rgb = np.asarray(PALETTE[name])
            if self.randomize:
                rgb = np.clip(rgb + jitter.uniform(-COLOR_JITTER, COLOR_JITTER, 3), 0.0, 1.0)
            for uid in _bodies(sim, task, role):
                pb.changeVisualShape(uid, -1, rgbaColor=(*rgb, 1.0), physicsClientId=sim.client)
        return roles

    def close(self) -> None:
        """Disconnect every simulator."""
        for sim in self.sims.values():
            sim.close()
        self.sims.clear()


def _bodies(sim: TabletopSim, task: str, role: str) -> list[int]:
    """Return the body ids that show role ``role`` of ``task`` in ``sim``."""
    current = sim.task
    if task.startswith('stack'):
        return [current.cubes[int(role[len('cube'):])]]
    if role == 'object':
        return [getattr(current, {'push': 'block', 'peg_insert': 'peg'}.get(task, 'cube'))]
    marker: Optional[str] = {'push': 'goal_marker', 'pick_place': 'target_marker',
                             'peg_insert': 'socket'}.get(task)
    return [getattr(current, marker)] if marker else []
