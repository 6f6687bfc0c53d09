"""Derived state features: values, symmetries, and their use inside the diffusion policy."""

import numpy as np
import pytest
import torch
from visual_rl_stack.residual_policy.diffusion_bc.model.config import DiffusionPolicyConfig
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import (
    DiffusionPolicy, fit_normalizers)
from visual_rl_stack.residual_policy.diffusion_bc.model.state_features import StateFeatures
from visual_rl_stack.sim.experts import gripper_down

LABELS = [('ee_position', 3), ('ee_orientation', 4), ('gripper_width', 1),
          ('cube_position', 3), ('cube_orientation', 4), ('target_position', 3)]


def _quat(yaw: float) -> np.ndarray:
    """Return the xyzw quaternion of a rotation by ``yaw`` about world z."""
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def _state(ee=(0.5, 0.0, 0.3), ee_yaw=0.2, cube=(0.6, 0.1, 0.02), cube_yaw=0.5,
           target=(0.4, -0.2, 0.02), cube_quat=None) -> torch.Tensor:
    quat = _quat(cube_yaw) if cube_quat is None else cube_quat
    row = np.concatenate([ee, gripper_down(ee_yaw), [0.08], cube, quat, target])
    return torch.tensor(row, dtype=torch.float64)


def test_raw_features_pass_the_state_through_unchanged():
    state = _state()
    features = StateFeatures(LABELS, 'raw')
    assert features.output_dim == 18
    assert torch.equal(features(state), state)


def test_relative_features_hold_position_differences_and_headings():
    features = StateFeatures(LABELS, 'relative')
    out = features(_state())
    assert out.shape == (features.output_dim,)
    assert torch.equal(out[:18], _state())
    extra = out[18:].numpy()
    # pairs in layout order: cube - ee, target - ee, target - cube
    np.testing.assert_allclose(extra[0:3], [0.1, 0.1, -0.28], atol=1e-12)
    np.testing.assert_allclose(extra[3:6], [-0.1, -0.2, -0.28], atol=1e-12)
    np.testing.assert_allclose(extra[6:9], [-0.2, -0.3, 0.0], atol=1e-12)
    # gripper heading (pointing down) and cube heading, orders 1 and 4
    np.testing.assert_allclose(extra[9:13], [np.cos(0.2), np.sin(0.2), np.cos(0.8),
                                             np.sin(0.8)], atol=1e-9)
    np.testing.assert_allclose(extra[13:17], [np.cos(0.5), np.sin(0.5), np.cos(2.0),
                                              np.sin(2.0)], atol=1e-9)
    # cube heading relative to the gripper, modulo 90 degrees
    np.testing.assert_allclose(extra[17:19], [np.cos(1.2), np.sin(1.2)], atol=1e-9)
    assert features.output_dim == 18 + 19


def test_relative_heading_respects_square_symmetry_and_quaternion_sign():
    features = StateFeatures(LABELS, 'relative')
    base = features(_state(cube_yaw=0.3))
    turned = features(_state(cube_yaw=0.3 + np.pi / 2))
    flipped = features(_state(cube_quat=-_quat(0.3)))
    np.testing.assert_allclose(turned[-2:], base[-2:], atol=1e-9)
    np.testing.assert_allclose(turned[-4:-2], base[-4:-2], atol=1e-9)
    np.testing.assert_allclose(flipped[18:], base[18:], atol=1e-9)


def test_bad_layouts_and_feature_sets_are_refused():
    with pytest.raises(ValueError, match='one of'):
        StateFeatures(LABELS, 'polar')
    with pytest.raises(ValueError, match='ee_position'):
        StateFeatures([('cube_position', 3), ('cube_orientation', 4)], 'relative')
    with pytest.raises(ValueError, match='18'):
        StateFeatures(LABELS, 'relative')(torch.zeros(5))
    with pytest.raises(ValueError, match='needs state_labels'):
        DiffusionPolicyConfig(state_dim=18, state_features='relative')
    with pytest.raises(ValueError, match='add up'):
        DiffusionPolicyConfig(state_dim=17, state_labels=tuple(LABELS))


def test_policy_normalises_features_and_survives_a_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    config = DiffusionPolicyConfig(state_dim=18, state_labels=tuple(LABELS),
                                   state_features='relative', down_dims=(32, 64),
                                   step_embed_dim=32)
    rng = np.random.default_rng(0)
    states = np.stack([_state(cube_yaw=y).numpy() for y in rng.uniform(-3, 3, 64)])
    states = states.astype(np.float32)
    actions = rng.uniform(-1, 1, (64, 7)).astype(np.float32)
    policy = DiffusionPolicy(config, fit_normalizers(config, actions, states)).eval()
    assert policy.normalizers['state'].dim == 37
    normalised = policy.normalize_state(states)
    assert normalised.shape == (64, 37)
    assert float(normalised.min()) >= -1.0 - 1e-6 and float(normalised.max()) <= 1.0 + 1e-6
    policy.save(tmp_path / 'ckpt')
    loaded = DiffusionPolicy.from_checkpoint(tmp_path / 'ckpt')
    assert loaded.config == config
    obs = {'state': states[None, :2]}
    gen = torch.Generator().manual_seed(3)
    first = policy.predict_action_chunk(obs, generator=gen)
    gen = torch.Generator().manual_seed(3)
    assert torch.allclose(loaded.predict_action_chunk(obs, generator=gen), first)


def test_invariant_features_ignore_a_shift_of_the_whole_scene():
    features = StateFeatures(LABELS, 'invariant')
    assert features.kept == ['gripper_width']
    state = _state()
    shifted = _state(ee=(0.4, 0.2, 0.3), cube=(0.5, 0.3, 0.02), target=(0.3, 0.0, 0.02))
    assert torch.allclose(features(shifted), features(state), atol=1e-12)
    raised = features(_state(ee=(0.5, 0.0, 0.35)))
    assert not torch.allclose(raised, features(state))
    # gripper width, three heights, three differences, two headings, one relative heading
    assert features.output_dim == 1 + 3 + 9 + 8 + 2 == features(state).shape[-1]


def test_frame_features_give_offsets_along_and_across_each_facing_line():
    features = StateFeatures(LABELS, 'frames')
    relative = StateFeatures(LABELS, 'relative')
    # three pair distances, then 3 * 2 ordered pairs with one third position each
    assert features.output_dim == relative.output_dim + 3 + 2 * 6
    state = _state(ee=(0.5, 0.1, 0.05), cube=(0.5, 0.0, 0.02), target=(0.5, -0.2, 0.02))
    out = features(state)
    assert torch.equal(out[:relative.output_dim], relative(state))
    frames = out[relative.output_dim:]
    assert torch.allclose(frames[:3], torch.tensor([0.1, 0.3, 0.2], dtype=frames.dtype))
    # order: (ee, cube), (ee, target), (cube, ee), (cube, target), ... each with the third
    cube_to_target_ee = frames[3 + 2 * 3:3 + 2 * 4]  # the gripper behind the cube, on the line
    assert torch.allclose(cube_to_target_ee, torch.tensor([-0.1, 0.0], dtype=frames.dtype),
                          atol=1e-5)
    # 3 cm to the left of the cube-to-target direction (counter-clockwise positive)
    beside = features(_state(ee=(0.53, 0.1, 0.05), cube=(0.5, 0.0, 0.02),
                             target=(0.5, -0.2, 0.02)))[relative.output_dim:]
    assert torch.allclose(beside[3 + 2 * 3:3 + 2 * 4],
                          torch.tensor([-0.1, 0.03], dtype=frames.dtype), atol=1e-5)
    # turning the whole scene about the cube leaves every frame feature unchanged
    turned = features(_state(ee=(0.4, 0.0, 0.05), cube=(0.5, 0.0, 0.02),
                             target=(0.7, 0.0, 0.02)))[relative.output_dim:]
    assert torch.allclose(turned, frames, atol=1e-5)
    coincident = _state(ee=(0.5, 0.0, 0.05), cube=(0.5, 0.0, 0.02)).requires_grad_()
    features(coincident).sum().backward()
    assert torch.isfinite(coincident.grad).all()
