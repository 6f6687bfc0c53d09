"""
Throughput of the environment against raw PyBullet on the same scene.

Two raw baselines build the scene through ``TabletopSim`` and then bypass it:

* ``raw_pybullet_steps_per_second``: constant joint targets. One
  ``setJointMotorControlArray`` call, the physics substeps and the same
  ``getCameraImage`` calls per control step. No inverse kinematics, so it is a
  lower bound on the cost of any end-effector-controlled loop.
* ``raw_pybullet_ik_steps_per_second``: what a hand-written PyBullet loop does
  for the env's job (hold a TCP pose): per control step one
  ``calculateInverseKinematics`` call for a fixed TCP target (the env's IK
  call: same link, limits, ranges and rest pose), one
  ``setJointMotorControlArray`` call, the substeps and the same renders.

The environment number goes through ``VisualRLEnv.step`` (action checks,
commanded pose, IK, task judging, observation). All three hold the arm still so
that they simulate the same contacts. Driving the arm to IK solutions (which
move slightly from step to step) costs the physics engine more than holding
the exact current joint angles, so the IK baseline is the like-for-like one.
"""

from __future__ import annotations

from dataclasses import replace
import time
from typing import Optional, Sequence

import numpy as np
import pybullet as pb

from .config import SimConfig
from .gym_env import VisualRLEnv
from .robot import MAX_GRIPPER_WIDTH
from .scene import TabletopSim


def _config(task: str, render_views: Sequence[str], config: Optional[SimConfig]) -> SimConfig:
    """Return the config with only the benchmarked camera views."""
    cfg = replace(config or SimConfig(), task=task)
    return replace(cfg, cameras=tuple(c for c in cfg.cameras if c.name in render_views))


def raw_pybullet_steps_per_second(task: str = 'lift', steps: int = 200,
                                  render_views: Sequence[str] = (),
                                  config: Optional[SimConfig] = None) -> float:
    """Return control steps per second when stepping PyBullet directly (constant targets)."""
    return _raw_loop(task, steps, render_views, config, with_ik=False)


def raw_pybullet_ik_steps_per_second(task: str = 'lift', steps: int = 200,
                                     render_views: Sequence[str] = (),
                                     config: Optional[SimConfig] = None) -> float:
    """
    Return control steps per second of a raw PyBullet loop holding a TCP pose by IK.

    The target is the TCP pose after reset and the gripper stays open, as with
    the env's hold-still action; the IK call is the one ``PandaRobot.command``
    makes, with nothing added.
    """
    return _raw_loop(task, steps, render_views, config, with_ik=True)


def _raw_loop(task: str, steps: int, render_views: Sequence[str],
              config: Optional[SimConfig], with_ik: bool) -> float:
    """Time ``steps`` control steps of the same scene driven by PyBullet calls alone."""
    sim = TabletopSim(_config(task, render_views, config))
    try:
        sim.reset(seed=0)
        robot, client = sim.robot, sim.client
        state = robot.state()
        position, orientation = state.ee_position.tolist(), state.ee_orientation.tolist()
        targets = list(state.joint_positions)
        half = 0.5 * MAX_GRIPPER_WIDTH
        renders = [sim.cameras[v].capture_args(sim.camera_mount(v), sim.randomizer.light)
                   for v in render_views]
        start = time.perf_counter()
        for _ in range(steps):
            if with_ik:
                q = pb.calculateInverseKinematics(
                    robot.uid, robot.tcp_link, position, orientation, lowerLimits=robot.lower,
                    upperLimits=robot.upper, jointRanges=robot.ranges, restPoses=robot.rest,
                    physicsClientId=client)
                targets = list(q[:7]) + [half, half]
            pb.setJointMotorControlArray(robot.uid, robot.joint_indices, pb.POSITION_CONTROL,
                                         targetPositions=targets, forces=robot.forces,
                                         physicsClientId=client)
            for _ in range(sim.config.substeps):
                pb.stepSimulation(physicsClientId=client)
            for kwargs in renders:
                pb.getCameraImage(**kwargs)
        return steps / (time.perf_counter() - start)
    finally:
        sim.close()


def env_steps_per_second(task: str = 'lift', steps: int = 200,
                         render_views: Sequence[str] = (),
                         config: Optional[SimConfig] = None) -> float:
    """Return control steps per second through ``VisualRLEnv.step`` (same scene and views)."""
    obs_mode = 'image' if render_views else 'state'
    env = VisualRLEnv(task, obs_mode, _config(task, render_views, config))
    try:
        env.reset(seed=0)
        hold = np.array([0, 0, 0, 0, 0, 0, 1], dtype=np.float32)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(hold)
        return steps / (time.perf_counter() - start)
    finally:
        env.close()
