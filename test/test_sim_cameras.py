"""Tests of camera calibration, selective rendering, wrist mounting and scheduling."""

import numpy as np
import pytest
from visual_rl_stack.sim.cameras import backproject, CameraScheduler
from visual_rl_stack.sim.config import CameraSpec, RandomizationConfig, SimConfig
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.tasks.lift import CUBE_HALF


@pytest.fixture(scope='module')
def sim():
    s = TabletopSim(SimConfig(task='lift'))
    yield s
    s.close()


@pytest.mark.parametrize('view', ['front', 'side', 'wrist'])
def test_backprojected_depth_lands_on_the_cube(sim, view):
    sim.reset(seed=3)
    frame = sim.render([view])[view]
    cube = sim.task_state()['cube_position']
    top = np.array([cube[0], cube[1], 2 * CUBE_HALF])
    points = backproject(frame, max_depth=2.0)
    near = points[(np.linalg.norm(points[:, :2] - top[:2], axis=1) < 0.012)
                  & (points[:, 2] > CUBE_HALF)]
    assert len(near) >= 3
    assert np.linalg.norm(near.mean(axis=0) - top) < 0.005


def test_frame_contents(sim):
    sim.reset(seed=0)
    frame = sim.render(['front'])['front']
    assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (128, 128, 3)
    assert frame.depth.dtype == np.float32 and frame.depth.shape == (128, 128)
    assert frame.frame_id == 'front_optical_frame'
    np.testing.assert_allclose(frame.T_world_camera[:3, :3] @ frame.T_world_camera[:3, :3].T,
                               np.eye(3), atol=1e-9)


def test_only_requested_views_are_rendered(sim, monkeypatch):
    calls = []
    for name, cam in sim.cameras.items():
        original = cam.render
        monkeypatch.setattr(cam, 'render', lambda *a, _o=original, _n=name, **k: (
            calls.append(_n), _o(*a, **k))[1])
    frames = sim.render(['side'])
    assert list(frames) == ['side'] and calls == ['side']
    with pytest.raises(ValueError, match='unknown camera'):
        sim.render(['top'])


def test_wrist_camera_moves_with_the_hand(sim):
    sim.reset(seed=0)
    before = sim.render(['wrist'])['wrist'].T_world_camera
    for _ in range(5):
        sim.step(np.array([0.03, 0.02, -0.03, 0, 0, 0, 1.0]))
    after = sim.render(['wrist'])['wrist'].T_world_camera
    moved = after[:3, 3] - before[:3, 3]
    ee_moved = sim.robot_state().ee_position - np.array([0.463, 0.0, 0.401])
    assert np.linalg.norm(moved - ee_moved) < 0.01
    front = sim.render(['front'])['front'].T_world_camera
    np.testing.assert_array_equal(front, sim.cameras['front'].pose())


def test_scheduler_respects_rates():
    specs = [CameraSpec('a', eye=(1, 0, 1), target=(0, 0, 0)),
             CameraSpec('b', eye=(1, 0, 1), target=(0, 0, 0), rate_hz=5.0)]
    scheduler = CameraScheduler(specs)
    due = [scheduler.due(step / 10.0) for step in range(6)]
    assert [('b' in d) for d in due] == [True, False, True, False, True, False]
    assert all('a' in d for d in due)


def test_randomisation_changes_looks_not_layout():
    cfg = RandomizationConfig(object_colors=True, lighting=True, camera_jitter=True,
                              background='textured')
    plain = TabletopSim(SimConfig(task='lift'))
    fancy = TabletopSim(SimConfig(task='lift', randomization=cfg))
    try:
        plain.reset(seed=4)
        fancy.reset(seed=4)
        np.testing.assert_array_equal(plain.task_state()['cube_position'],
                                      fancy.task_state()['cube_position'])
        a = fancy.render(['front'])['front'].rgb
        fancy.reset(seed=5)
        b = fancy.render(['front'])['front'].rgb
        assert not np.array_equal(a, b)
        assert not np.array_equal(plain.render(['front'])['front'].rgb, a)
    finally:
        plain.close()
        fancy.close()


def test_distractors_do_not_touch_physics():
    sim = TabletopSim(SimConfig(task='lift', randomization=RandomizationConfig(
        background='distractors')))
    try:
        sim.reset(seed=0)
        assert len(sim.randomizer.distractors) == 3
        for _ in range(3):
            sim.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
        assert not sim.success()
    finally:
        sim.close()
