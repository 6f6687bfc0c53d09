"""
How long one world-model node update takes: the monitor core over expert episodes.

The node answers every control step, so its update must stay far below the
control period (100 ms at 10 Hz). Measured without ROS on the work the node
does per step (keyframe detector, stage judgement, and with a world model
the MAE's reward head on every view), over scripted-expert episodes of a
task; seeds from 1000, like every evaluation.
"""

from dataclasses import replace
from typing import Optional

import numpy as np
from visual_rl_stack.sim.config import default_cameras, SimConfig
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.scene import TabletopSim

from .mae.model import MultiViewMAE
from .monitor import OK, WorldModelMonitor
from .planning.instruction_parser import parse_instruction


def monitor_latency(task: str, episodes: int = 3, mae: Optional[MultiViewMAE] = None,
                    seed_start: int = 1000) -> dict:
    """Return update latency (ms: median, p99, max) and the share of steps judged OK."""
    cameras = {c.name: c for c in default_cameras()}
    views = () if mae is None else mae.config.views
    size = None if mae is None else mae.config.image_size
    sim = TabletopSim(SimConfig(task=task, cameras=tuple(
        replace(cameras[v], width=size, height=size) for v in views)))
    monitor = WorldModelMonitor(parse_instruction, mae=mae, control_hz=sim.config.control_hz)
    seconds, ok = [], 0
    try:
        for seed in range(seed_start, seed_start + episodes):
            sim.reset(seed=seed)
            expert = make_expert(task, sim.config.action_mode, noise=0.0,
                                 rng=np.random.default_rng(seed))
            monitor.new_episode(sim.instruction)
            for _ in range(sim.max_episode_steps):
                robot = sim.robot_state()
                images = ({v: f.rgb[..., :3] for v, f in sim.render(list(views)).items()}
                          if views else None)
                update = monitor.update(robot.joint_positions[:7], robot.gripper_width,
                                        robot.ee_position, sim.task_state(), images)
                seconds.append(update.seconds)
                ok += update.level == OK
                if sim.step(expert.act(sim)).success:
                    break
    finally:
        sim.close()
    ms = np.asarray(seconds) * 1e3
    return {'task': task, 'episodes': episodes, 'updates': len(ms),
            'world_model': mae is not None, 'median_ms': float(np.median(ms)),
            'p99_ms': float(np.percentile(ms, 99)), 'max_ms': float(ms.max()),
            'ok_fraction': ok / len(ms)}
