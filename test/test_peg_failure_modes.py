"""The peg_insert failure-mode replay reads the peg's final pose and names how an episode ended."""

import importlib.util
from pathlib import Path

import numpy as np
import pybullet as pb
import pytest

from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.tasks.peg_insert import PEG_HALF_HEIGHT, WALL_HEIGHT

TOOL = Path(__file__).resolve().parent.parent / 'tools' / 'peg_failure_modes.py'


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('peg_failure_modes', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def task():
    sim = TabletopSim(SimConfig(task='peg_insert', cameras=()))
    sim.reset(seed=3)
    yield sim.task
    sim.close()


def test_upright_peg_turned_over_the_hole(tool, task):
    hole = task.hole
    task.place(task.peg, (hole[0] + 0.003, hole[1], WALL_HEIGHT + PEG_HALF_HEIGHT + 0.01),
               task.hole_yaw + np.radians(20) + np.pi / 2)  # a quarter turn is no turn
    pose = tool.final_pose(task)
    assert pose['offset_mm'] == pytest.approx(3.0, abs=0.1)
    assert pose['turn_deg'] == pytest.approx(20.0, abs=0.1)
    assert pose['tilt_deg'] == pytest.approx(0.0, abs=0.1)
    assert pose['bottom_above_rim_mm'] == pytest.approx(10.0, abs=0.1)
    assert tool.failure_mode(pose) == 'over the hole, turned'


def test_toppled_and_beside_the_hole(tool, task):
    hole = task.hole
    lying = pb.getQuaternionFromEuler((np.pi / 2, 0.0, 0.0))
    pb.resetBasePositionAndOrientation(task.peg, (hole[0] + 0.08, hole[1], 0.015), lying,
                                       physicsClientId=task.client)
    task.invalidate()
    pose = tool.final_pose(task)
    assert pose['tilt_deg'] == pytest.approx(90.0, abs=0.1)
    assert tool.failure_mode(pose) == 'toppled or held crooked'
    task.place(task.peg, (hole[0] + 0.03, hole[1], PEG_HALF_HEIGHT), task.hole_yaw)
    assert tool.failure_mode(tool.final_pose(task)) == 'beside the hole'
