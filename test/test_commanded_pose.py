"""The commanded pose a ROS-side controller keeps mirrors the simulator's own."""

import numpy as np
import pytest
from visual_rl_stack.sim.commanded_pose import CommandedPose, MAX_LEAD
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.scene import TabletopSim


def test_controller_copy_tracks_the_simulator_exactly():
    sim = TabletopSim(SimConfig(task='lift', cameras=()))
    try:
        sim.reset(seed=3)
        state = sim.robot_state()
        mirror = CommandedPose(sim.workspace, sim.max_delta, sim.max_rot_delta)
        mirror.set_target(state.ee_position, state.ee_orientation)
        expert = make_expert('lift', 'delta', rng=np.random.default_rng(0))
        for _ in range(15):
            action = expert.act(sim)
            mirror.apply_delta(action[:6], sim.robot_state().ee_position)
            sim.step(action)
            np.testing.assert_allclose(mirror.position, sim.commanded.position, atol=1e-12)
            np.testing.assert_allclose(mirror.orientation, sim.commanded.orientation,
                                       atol=1e-12)
    finally:
        sim.close()


def test_reference_leads_the_measured_tcp_by_at_most_max_lead():
    pose = CommandedPose()
    pose.set_target([0.5, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0])
    reference, _ = pose.reference(np.array([0.5, 0.0, 0.1]))
    assert np.linalg.norm(reference - [0.5, 0.0, 0.1]) == pytest.approx(MAX_LEAD)


def test_deltas_are_clipped_and_targets_clamped():
    pose = CommandedPose(max_delta=0.05)
    pose.set_target([0.5, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0])
    pose.apply_delta(np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0]), np.array([0.5, 0.0, 0.3]))
    assert pose.position[0] == pytest.approx(0.55)
    assert pose.set_target([5.0, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0])
    assert pose.position[0] == pytest.approx(pose.workspace.hi[0])


def test_invalid_targets_raise():
    pose = CommandedPose()
    with pytest.raises(ValueError, match='quaternion'):
        pose.set_target([0.5, 0.0, 0.3], [0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match='finite'):
        pose.set_target([np.nan, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0])
