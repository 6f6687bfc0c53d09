"""
Throughput of the environment against raw PyBullet on the same scene.

The raw baseline builds the scene through ``TabletopSim`` and then bypasses
it: one ``setJointMotorControlArray`` call, the physics substeps and the same
``getCameraImage`` calls per control step. The environment number goes through
``VisualRLEnv.step`` (IK, action checks, task judging, observation). Both hold
the arm still so that they simulate the same contacts.
"""

from __future__ import annotations

from dataclasses import replace
import time
from typing import Optional, Sequence

import numpy as np
import pybullet as pb

from .config import SimConfig
from .gym_env import VisualRLEnv
from .scene import TabletopSim


def _config(task: str, render_views: Sequence[str], config: Optional[SimConfig]) -> SimConfig:
    """Return the config with only the benchmarked camera views."""
    cfg = replace(config or SimConfig(), task=task)
    return replace(cfg, cameras=tuple(c for c in cfg.cameras if c.name in render_views))


def raw_pybullet_steps_per_second(task: str = 'lift', steps: int = 200,
                                  render_views: Sequence[str] = (),
                                  config: Optional[SimConfig] = None) -> float:
    """Return control steps per second when stepping PyBullet directly."""
    sim = TabletopSim(_config(task, render_views, config))
    try:
        sim.reset(seed=0)
        robot, client = sim.robot, sim.client
        targets = list(robot.state().joint_positions)
        renders = [sim.cameras[v].capture_args(sim.camera_mount(v), sim.randomizer.light)
                   for v in render_views]
        start = time.perf_counter()
        for _ in range(steps):
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
