"""The failure-mode replay reads the objects' final poses and names how an episode ended."""

import importlib.util
from pathlib import Path

import numpy as np
import pybullet as pb
import pytest
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.tasks.lift import CUBE_HALF
from visual_rl_stack.sim.tasks.peg_insert import PEG_HALF_HEIGHT, WALL_HEIGHT

TOOL = Path(__file__).resolve().parent.parent / 'tools' / 'failure_modes.py'


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('failure_modes', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reset_task(name: str):
    sim = TabletopSim(SimConfig(task=name, cameras=()))
    sim.reset(seed=3)
    return sim


@pytest.fixture
def peg_task():
    sim = reset_task('peg_insert')
    yield sim.task
    sim.close()


@pytest.fixture
def stack_task():
    sim = reset_task('stack')
    yield sim.task
    sim.close()


def test_upright_peg_turned_over_the_hole(tool, peg_task):
    task, hole = peg_task, peg_task.hole
    task.place(task.peg, (hole[0] + 0.003, hole[1], WALL_HEIGHT + PEG_HALF_HEIGHT + 0.01),
               task.hole_yaw + np.radians(20) + np.pi / 2)  # a quarter turn is no turn
    pose = tool.peg_final_pose(task, {})
    assert pose['offset_mm'] == pytest.approx(3.0, abs=0.1)
    assert pose['turn_deg'] == pytest.approx(20.0, abs=0.1)
    assert pose['tilt_deg'] == pytest.approx(0.0, abs=0.1)
    assert pose['bottom_above_rim_mm'] == pytest.approx(10.0, abs=0.1)
    assert tool.peg_failure_mode(pose) == 'over the hole, turned'


def test_toppled_and_beside_the_hole(tool, peg_task):
    task, hole = peg_task, peg_task.hole
    lying = pb.getQuaternionFromEuler((np.pi / 2, 0.0, 0.0))
    pb.resetBasePositionAndOrientation(task.peg, (hole[0] + 0.08, hole[1], 0.015), lying,
                                       physicsClientId=task.client)
    task.invalidate()
    pose = tool.peg_final_pose(task, {})
    assert pose['tilt_deg'] == pytest.approx(90.0, abs=0.1)
    assert tool.peg_failure_mode(pose) == 'toppled or held crooked'
    task.place(task.peg, (hole[0] + 0.03, hole[1], PEG_HALF_HEIGHT), task.hole_yaw)
    assert tool.peg_failure_mode(tool.peg_final_pose(task, {})) == 'beside the hole'


def test_stack_cube_on_the_table_off_the_tower_and_stacked(tool, stack_task):
    task = stack_task
    bottom = task.pose(task.cubes[0])[0]
    start = {uid: task.pose(uid)[0] for uid in task.bodies}
    pose = tool.stack_final_pose(task, start)
    assert pose['top_above_table_mm'] == pytest.approx(0.0, abs=1.0)
    assert pose['top_moved_mm'] == pytest.approx(0.0, abs=0.1)
    assert not pose['top_held'] and not pose['stacked']
    assert tool.stack_failure_mode(pose) == 'top cube on the table, not picked up'
    top = start[task.cubes[1]]
    task.place(task.cubes[1], (top[0] + 0.05, top[1], CUBE_HALF))
    assert tool.stack_failure_mode(tool.stack_final_pose(task, start)) == (
        'top cube on the table, dropped or pushed')
    # Resting 3 cm off-centre: half on the bottom cube, so not stacked.
    task.place(task.cubes[1], (bottom[0] + 0.03, bottom[1], 3 * CUBE_HALF))
    pose = tool.stack_final_pose(task, start)
    assert pose['offset_mm'] == pytest.approx(30.0, abs=0.1)
    assert pose['top_above_table_mm'] == pytest.approx(2000 * CUBE_HALF, abs=0.1)
    assert tool.stack_failure_mode(pose) == 'top cube off the tower'
    task.place(task.cubes[1], (bottom[0], bottom[1], 3 * CUBE_HALF))
    pose = tool.stack_final_pose(task, start)
    assert pose['stacked'] and tool.stack_failure_mode(pose) == 'tower built, cube still held'
    task.place(task.cubes[0], (bottom[0], bottom[1], 3 * CUBE_HALF))
    assert tool.stack_failure_mode(tool.stack_final_pose(task, start)) == (
        'bottom cube moved off the table')
