"""
The tabletop simulator: one PyBullet client with a Panda, a table and a task.

Action layout (physical units, ``SimConfig.action_mode``):

* ``'delta'``: 7 floats ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``. The
  translation (metres per control step) is clipped to ``+-max_delta`` and the
  rotation (radians per step, fixed-axis roll/pitch/yaw composed in the WORLD
  frame onto the commanded orientation) to ``+-max_rot_delta``. ``gripper`` is
  the target opening fraction in [0, 1], 1 = fully open (8 cm).
* ``'absolute'``: 8 floats ``[x, y, z, qx, qy, qz, qw, gripper]``: a TCP pose
  in the world frame (the quaternion is normalised) and the opening fraction.

Deltas accumulate on the commanded target (``commanded_pose.CommandedPose``), kept
within ``MAX_LEAD`` of the measured TCP so that blocked motions do not wind up. Every
target is clamped into the robot's ``Workspace`` (``info['clamped']`` reports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Iterable, Optional

import numpy as np
import pybullet as pb

from .cameras import Camera, CameraFrame, CameraScheduler
from .commanded_pose import CommandedPose
from .config import SimConfig
from .randomization import Randomizer
from .robot import MAX_GRIPPER_WIDTH, PandaRobot, RobotState, Workspace
from .tasks import make_task, Task
from .tasks.base import create_box

PARKING_Z = -5.0
TABLE_HALF = (0.6, 0.75, 0.025)
TABLE_CENTRE = (0.35, 0.0, -0.025)
TABLE_COLOR = (0.75, 0.65, 0.5, 1.0)
#: Per-step limits of a delta action: metres of translation, radians of rotation.
DEFAULT_MAX_DELTA = 0.05
DEFAULT_MAX_ROT_DELTA = 0.2


@dataclass
class StepResult:
    """Outcome of one control step."""

    reward: float
    success: bool
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)


class TabletopSim:
    """A Panda tabletop scene stepping at the control rate of its ``SimConfig``."""

    def __init__(self, config: Optional[SimConfig] = None, workspace: Workspace = Workspace(),
                 max_delta: float = DEFAULT_MAX_DELTA,
                 max_rot_delta: float = DEFAULT_MAX_ROT_DELTA):
        """Connect a private PyBullet client and build the configured task."""
        self.config = config or SimConfig()
        self.workspace = workspace
        self.commanded = CommandedPose(workspace, max_delta, max_rot_delta)
        self.max_delta = max_delta
        self.max_rot_delta = max_rot_delta
        self.client = pb.connect(pb.GUI if self.config.gui else pb.DIRECT)
        self.scheduler = CameraScheduler(self.config.cameras)
        self._seeds = np.random.default_rng()
        self.step_count = 0
        self.clamped = False
        self._build(self.config.task)
        self.reset()

    def _build(self, task_name: str) -> None:
        """Create the whole world for a task and snapshot it for fast resets."""
        cfg, client = self.config, self.client
        task = make_task(task_name)
        pb.resetSimulation(physicsClientId=client)
        pb.setPhysicsEngineParameter(fixedTimeStep=1.0 / cfg.physics_hz,
                                     deterministicOverlappingPairs=1,
                                     physicsClientId=client)
        pb.setGravity(0, 0, -9.81, physicsClientId=client)
        self.table = create_box(client, TABLE_HALF, TABLE_COLOR, 0.0, TABLE_CENTRE)
        self.robot = PandaRobot(client)
        self.robot.reset()
        self.task: Task = task
        task.build(self)
        self.randomizer = Randomizer(cfg.randomization, client, self.table)
        self.cameras = {spec.name: Camera(spec, client) for spec in cfg.cameras}
        self._snapshot = pb.saveState(physicsClientId=client)

    def reset(self, seed: Optional[int] = None, task: Optional[str] = None) -> None:
        """Start an episode: same seed, same initial state; ``task`` switches tasks."""
        if task is not None and task != self.task.name:
            self._build(task)
        else:
            self._forget_contacts()
            pb.restoreState(self._snapshot, physicsClientId=self.client)
        if seed is None:
            seed = int(self._seeds.integers(2**31))
        task_seq, visual_seq = np.random.SeedSequence(seed).spawn(2)
        self.robot.reset()
        self.robot.invalidate()
        self.task.invalidate()
        self.task.reset(np.random.default_rng(task_seq))
        self.randomizer.apply(np.random.default_rng(visual_seq), self.task.bodies,
                              list(self.cameras.values()))
        self.task.invalidate()
        state = self.robot.state()
        self.commanded.set_target(state.ee_position, state.ee_orientation)
        self.gripper = 1.0
        self.step_count = 0
        self.clamped = False
        self.scheduler.reset()

    def _forget_contacts(self) -> None:
        """
        Drop cached contact manifolds, which a restored state does not replace.

        Warm-started contact impulses from the previous episode would otherwise
        make the same seed give (slightly) different trajectories.
        """
        for i, uid in enumerate(self.task.bodies):
            pb.resetBasePositionAndOrientation(uid, (i, 0.0, PARKING_Z), (0, 0, 0, 1),
                                               physicsClientId=self.client)
        pb.performCollisionDetection(physicsClientId=self.client)

    @property
    def max_episode_steps(self) -> int:
        """Return the episode length limit (config override, else the task's)."""
        return self.config.max_episode_steps or self.task.max_episode_steps

    @property
    def sim_time(self) -> float:
        """Return seconds of simulated time since reset."""
        return self.step_count / self.config.control_hz

    @property
    def instruction(self) -> str:
        """Return the English instruction of the current task."""
        return self.task.instruction()

    def action_space_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (low, high) of the physical action layout for the action mode."""
        if self.config.action_mode == 'delta':
            high = np.array([self.max_delta] * 3 + [self.max_rot_delta] * 3 + [1.0])
            low = -high
            low[6] = 0.0
            return low, high
        low = np.concatenate([self.workspace.lo, -np.ones(4), [0.0]])
        high = np.concatenate([self.workspace.hi, np.ones(4), [1.0]])
        return low, high

    def apply_action(self, action: np.ndarray) -> None:
        """Validate an action in the configured layout and send it to the robot."""
        delta = self.config.action_mode == 'delta'
        a = np.asarray(action, dtype=np.float64)
        size = 7 if delta else 8
        if a.shape != (size,):
            raise ValueError(f'{self.config.action_mode} action must have {size} values, '
                             f'got shape {a.shape}')
        if not np.isfinite(a).all():
            raise ValueError(f'action contains NaN or inf: {a.tolist()}')
        if not delta:
            self.command_pose(a[:3], a[3:7], a[7])
            return
        self.clamped = self.commanded.apply_delta(a[:6], self.robot.state().ee_position)
        self._send(a[6])

    def delta_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the pose a delta action is added to: the lead-limited commanded target."""
        return self.commanded.reference(self.robot.state().ee_position)

    def command_pose(self, position: Iterable[float], orientation_xyzw: Iterable[float],
                     gripper_open_fraction: float) -> bool:
        """Command a TCP pose and gripper opening; return whether it was clamped."""
        if not math.isfinite(gripper_open_fraction):
            raise ValueError('gripper_open_fraction must be finite')
        self.clamped = self.commanded.set_target(position, orientation_xyzw)
        self._send(gripper_open_fraction)
        return self.clamped

    def _send(self, gripper_open_fraction: float) -> None:
        """Send the commanded pose and a gripper opening to the robot."""
        self.gripper = min(max(float(gripper_open_fraction), 0.0), 1.0)
        self.robot.command(self.commanded.position, self.commanded.orientation,
                           self.gripper * MAX_GRIPPER_WIDTH)

    def step(self, action: np.ndarray) -> StepResult:
        """Apply an action, advance one control period and judge the task."""
        self.apply_action(action)
        self.advance()
        success = self.task.success()
        info: dict[str, Any] = {'success': success, 'clamped': self.clamped}
        if hasattr(self.task, 'stages_completed'):
            info['stages_completed'] = self.task.stages_completed()
        truncated = not success and self.step_count >= self.max_episode_steps
        return StepResult(1.0 if success else 0.0, success, success, truncated, info)

    def advance(self) -> None:
        """Run the physics substeps of one control period under the current commands."""
        for _ in range(self.config.substeps):
            pb.stepSimulation(physicsClientId=self.client)
        self.robot.invalidate()
        self.task.invalidate()
        self.step_count += 1

    def success(self) -> bool:
        """Return whether the current task is solved."""
        return self.task.success()

    def robot_state(self) -> RobotState:
        """Return the robot's proprioception."""
        return self.robot.state()

    def task_state(self) -> dict[str, np.ndarray]:
        """Return privileged object poses and goals of the current task."""
        return self.task.privileged_state()

    def render(self, views: Optional[Iterable[str]] = None) -> dict[str, CameraFrame]:
        """Render only the requested views (all configured views if None)."""
        names = list(self.cameras) if views is None else list(views)
        unknown = [n for n in names if n not in self.cameras]
        if unknown:
            raise ValueError(f'unknown camera views {unknown}; known: {list(self.cameras)}')
        return {name: self.cameras[name].render(self.camera_mount(name), self.randomizer.light)
                for name in names}

    def camera_mount(self, name: str) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """Return the TCP pose a wrist camera hangs from, or None for world cameras."""
        if self.cameras[name].spec.mount != 'wrist':
            return None
        state = self.robot.state()
        return state.ee_position, state.ee_orientation

    def close(self) -> None:
        """Disconnect the PyBullet client (idempotent)."""
        if self.client >= 0:
            pb.disconnect(physicsClientId=self.client)
            self.client = -1

    def __del__(self) -> None:
        """Release the PyBullet client when the simulator is garbage-collected."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have unloaded pybullet
            pass


__all__ = ['StepResult', 'TabletopSim']
