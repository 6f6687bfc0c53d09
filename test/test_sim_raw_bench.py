"""The raw PyBullet baselines of ``vrl bench sim`` do the env's work, no more, no less."""

import numpy as np
import pybullet as pb
import pytest
from visual_rl_stack.sim import raw_bench
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.scene import TabletopSim

CONFIG = SimConfig(task='lift', cameras=())


def _count_ik_calls(monkeypatch, fn, steps: int) -> int:
    """Return how many IK calls ``fn`` makes for ``steps`` control steps (after reset)."""
    calls = []
    real = pb.calculateInverseKinematics

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    original_reset = TabletopSim.reset

    def reset_then_count(self, *args, **kwargs):
        original_reset(self, *args, **kwargs)
        calls.clear()

    monkeypatch.setattr(pb, 'calculateInverseKinematics', counting)
    monkeypatch.setattr(TabletopSim, 'reset', reset_then_count)
    assert fn('lift', steps, (), CONFIG) > 0
    return len(calls)


@pytest.mark.parametrize('steps', [3])
def test_ik_baseline_makes_one_ik_call_per_step_like_the_env(monkeypatch, steps):
    assert _count_ik_calls(monkeypatch, raw_bench.raw_pybullet_ik_steps_per_second,
                           steps) == steps
    assert _count_ik_calls(monkeypatch, raw_bench.env_steps_per_second, steps) == steps
    assert _count_ik_calls(monkeypatch, raw_bench.raw_pybullet_steps_per_second, steps) == 0


def test_task_pose_cache_follows_teleports_and_physics():
    sim = TabletopSim(CONFIG)
    try:
        sim.reset(seed=0)
        task = sim.task
        pos, _ = task.pose(task.cube)
        pos[0] = 99.0  # callers get fresh arrays; the cache is not aliased
        assert task.pose(task.cube)[0][0] != 99.0
        task.place(task.cube, (0.5, 0.1, 0.3))
        np.testing.assert_allclose(task.pose(task.cube)[0], [0.5, 0.1, 0.3])
        sim.advance()  # the cube falls
        assert task.pose(task.cube)[0][2] < 0.3
        assert task.pose(task.cube)[0][2] == pytest.approx(
            pb.getBasePositionAndOrientation(task.cube, physicsClientId=sim.client)[0][2])
    finally:
        sim.close()
