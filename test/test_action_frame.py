"""Action frames: rotation round trips, config checks, a policy that learns in one, residuals."""

import json
import math

import numpy as np
import pytest
import torch
from visual_rl_stack.residual_policy.diffusion_bc.model.action_frame import (ActionFrame,
                                                                             rotate_planar)
from visual_rl_stack.residual_policy.diffusion_bc.model.config import DiffusionPolicyConfig
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import (
    DiffusionPolicy, fit_normalizers)
from visual_rl_stack.residual_policy.resip.actor_critic import ResidualActor
from visual_rl_stack.residual_policy.resip.agent import NormalisedSpace, residual_config_for

LABELS = (('ee_position', 3), ('gripper_width', 1), ('block_position', 3),
          ('goal_position', 3))
STATE_DIM = 10
FRAME = ('block_position', 'goal_position')


def _state(ee=(0.4, 0.0, 0.1), block=(0.5, 0.0, 0.02), goal=(0.5, 0.1, 0.0)) -> torch.Tensor:
    return torch.tensor([*ee, 0.04, *block, *goal], dtype=torch.float64)


def test_actions_along_the_facing_line_become_the_frame_x_axis():
    frame = ActionFrame(LABELS, FRAME, 7)
    state = _state()  # goal straight along +y from the block
    heading = frame.heading(state)
    assert math.isclose(float(heading), math.pi / 2, abs_tol=1e-9)
    world = torch.tensor([0.0, 0.01, -0.002, 0.0, 0.1, 0.3, 1.0], dtype=torch.float64)
    seen = frame.to_frame(world, heading)
    assert torch.allclose(seen, torch.tensor([0.01, 0.0, -0.002, 0.1, 0.0, 0.3, 1.0],
                                             dtype=torch.float64), atol=1e-12)
    assert torch.allclose(frame.to_world(seen, heading), world, atol=1e-12)


def test_rotation_broadcasts_one_heading_over_a_chunk_and_keeps_the_input():
    actions = torch.randn(5, 8, 7, dtype=torch.float64)
    kept = actions.clone()
    angles = torch.rand(5, 1, dtype=torch.float64) * 6 - 3
    back = rotate_planar(rotate_planar(actions, angles), -angles)
    assert torch.allclose(back, actions, atol=1e-12)
    assert torch.equal(actions, kept)
    turned = rotate_planar(actions, angles)
    assert torch.equal(turned[..., [2, 5, 6]], actions[..., [2, 5, 6]])
    assert torch.allclose(turned[..., :2].norm(dim=-1), actions[..., :2].norm(dim=-1))


def test_coincident_points_give_world_axes():
    frame = ActionFrame(LABELS, FRAME, 7)
    assert float(frame.heading(_state(goal=(0.5, 0.0, 0.0)))) == 0.0


def test_bad_action_frames_are_refused():
    with pytest.raises(ValueError, match='not positions of the state layout'):
        ActionFrame(LABELS, ('block_position', 'target_position'), 7)
    with pytest.raises(ValueError, match='needs delta actions'):
        ActionFrame(LABELS, FRAME, 8)
    with pytest.raises(ValueError, match='two position fields'):
        ActionFrame(LABELS, ('block_position',), 7)
    with pytest.raises(ValueError, match='needs the state in the observation'):
        DiffusionPolicyConfig(obs_mode='image', views=('front',), state_dim=STATE_DIM,
                              state_labels=LABELS, action_frame=FRAME)
    config = _config()
    with pytest.raises(ValueError, match='needs the states'):
        fit_normalizers(config, np.zeros((4, 7), np.float32))
    assert DiffusionPolicyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def _config() -> DiffusionPolicyConfig:
    return DiffusionPolicyConfig(state_dim=STATE_DIM, action_dim=7, state_labels=LABELS,
                                 action_frame=FRAME, n_obs_steps=1, horizon=8,
                                 n_action_steps=4, down_dims=(16, 32), step_embed_dim=16)


def _pushes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return states (n, 1, S) and chunks (n, 8, 7) moving 8-12 mm per step towards the goal."""
    block = np.column_stack([rng.uniform(0.35, 0.65, n), rng.uniform(-0.2, 0.2, n),
                             np.full(n, 0.02)])
    angle = rng.uniform(-np.pi, np.pi, n)
    goal = block + 0.15 * np.column_stack([np.cos(angle), np.sin(angle), np.zeros(n)])
    goal[:, 2] = 0.0
    ee = block - 0.06 * np.column_stack([np.cos(angle), np.sin(angle), np.zeros(n)])
    states = np.column_stack([ee, np.full(n, 0.04), block, goal])[:, None].astype(np.float32)
    speed = rng.uniform(0.008, 0.012, n)
    step = np.zeros((n, 7))
    step[:, 0], step[:, 1] = speed * np.cos(angle), speed * np.sin(angle)
    return states, np.repeat(step[:, None], 8, axis=1).astype(np.float32)


def test_a_policy_learns_in_the_frame_and_acts_in_world_coordinates():
    """One push law at every heading: a constant in the frame, rotated back at inference."""
    rng = np.random.default_rng(0)
    states, actions = _pushes(512, rng)
    config = _config()
    torch.manual_seed(0)
    policy = DiffusionPolicy(config, fit_normalizers(config, actions.reshape(-1, 7),
                                                     np.repeat(states, 8, axis=1).reshape(-1, 10)))
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(150):
        rows = rng.integers(0, len(states), 32)
        loss = policy.compute_loss({'state': states[rows], 'action': actions[rows]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_states, test_actions = _pushes(16, np.random.default_rng(1))
    chunk = policy.eval().predict_action_chunk({'state': test_states}, noise_scale=0.0)
    predicted = chunk[:, 0, :2].double()
    expected = torch.as_tensor(test_actions[:, 0, :2]).double()
    cosine = (predicted * expected).sum(-1) / (predicted.norm(dim=-1) * expected.norm(dim=-1))
    # Headings span the circle, so without the rotation back most would point elsewhere.
    assert cosine.min() > math.cos(math.radians(10))
    assert torch.allclose(predicted.norm(dim=-1), expected.norm(dim=-1), atol=0.004)


def test_residual_space_sees_base_actions_in_the_frame_and_returns_them_unchanged():
    """World actions normalised with frame ranges would be clamped; in the frame they fit."""
    rng = np.random.default_rng(2)
    states, actions = _pushes(256, rng)
    config = _config()
    policy = DiffusionPolicy(config, fit_normalizers(config, actions.reshape(-1, 7),
                                                     np.repeat(states, 8, axis=1).reshape(-1, 10)))
    space = NormalisedSpace(policy)
    test_states, test_actions = _pushes(16, np.random.default_rng(3))
    world, at = test_actions[:, 0], test_states[:, 0]
    base_norm = space.action_norm(world, at)
    assert base_norm.abs().max() <= 1.0 + 1e-5
    actor = ResidualActor(residual_config_for(policy))
    zero = torch.zeros_like(base_norm)
    sent = space.action_raw(actor.combine(base_norm, zero), at)
    np.testing.assert_allclose(sent, world, atol=1e-6)
    # Seen in world axes the same actions span directions the frame ranges never saw.
    assert policy.normalizers['action'].normalize(torch.as_tensor(world)).abs().max() > 1.5


def _pushes_with_sideways(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``_pushes`` whose steps also correct sideways by up to 2 mm (in the frame)."""
    states, chunks = _pushes(n, rng)
    heading = np.arctan2(states[:, 0, 8] - states[:, 0, 5], states[:, 0, 7] - states[:, 0, 4])
    sideways = rng.uniform(-0.002, 0.002, n)
    chunks[:, :, 0] -= (sideways * np.sin(heading))[:, None]
    chunks[:, :, 1] += (sideways * np.cos(heading))[:, None]
    return states, chunks


def test_zero_residual_sends_the_base_action_seen_in_another_steps_frame():
    """Planned in one frame, taken where the facing has turned: clamping would change it."""
    states, actions = _pushes_with_sideways(256, np.random.default_rng(4))
    config = _config()
    policy = DiffusionPolicy(config, fit_normalizers(config, actions.reshape(-1, 7),
                                                     np.repeat(states, 8, axis=1).reshape(-1, 10)))
    space = NormalisedSpace(policy)
    test_states, test_actions = _pushes_with_sideways(16, np.random.default_rng(5))
    world = test_actions[:, 0]
    # The same actions taken at the other scenes' states: frames turned at random.
    turned = test_states[::-1, 0].copy()
    base_norm = space.action_norm(world, turned)
    assert base_norm.abs().max() > 1.05
    actor = ResidualActor(residual_config_for(policy))
    sent = space.action_raw(actor.combine(base_norm, torch.zeros_like(base_norm)), turned)
    np.testing.assert_allclose(sent, world, atol=1e-6)
