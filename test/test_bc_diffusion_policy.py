"""Diffusion policy: schedulers, sampling bounds, checkpoints, EMA and a tiny training run."""

import json

import numpy as np
import pytest
import torch
from visual_rl_stack.residual_policy.diffusion_bc.model.config import (
    DiffusionPolicyConfig, resip_config)
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import (
    create_ema, DiffusionPolicy, ema_weights, fit_normalizers)

STATE_DIM, ACTION_DIM = 3, 2


def _small_config(**overrides) -> DiffusionPolicyConfig:
    settings = {'state_dim': STATE_DIM, 'action_dim': ACTION_DIM, 'n_obs_steps': 1,
                'horizon': 8, 'n_action_steps': 4, 'down_dims': (16, 32), 'step_embed_dim': 16}
    return DiffusionPolicyConfig(**{**settings, **overrides})


def _demos(n: int, horizon: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return states (n, 1, S) and actions (n, horizon, A) = linear map of state + a ramp."""
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(42).normal(size=(STATE_DIM, ACTION_DIM))
    states = rng.uniform(-2, 2, (n, 1, STATE_DIM)).astype(np.float32)
    ramp = np.linspace(0, 1, horizon)[None, :, None]
    return states, ((states[:, 0] @ weights)[:, None, :] + ramp).astype(np.float32)


def _policy(config: DiffusionPolicyConfig, seed: int = 0) -> DiffusionPolicy:
    torch.manual_seed(seed)
    states, actions = _demos(256, config.horizon)
    return DiffusionPolicy(config, fit_normalizers(config, actions, states)).eval()


def test_config_round_trips_through_json_and_rejects_bad_settings():
    config = resip_config(state_dim=10, action_dim=7)
    assert DiffusionPolicyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match='divisible by 4'):
        DiffusionPolicyConfig(state_dim=3, horizon=10)
    with pytest.raises(ValueError, match='needs at least one view'):
        DiffusionPolicyConfig(obs_mode='image')
    with pytest.raises(ValueError, match='unknown DiffusionPolicyConfig keys: bogus'):
        DiffusionPolicyConfig.from_dict({'bogus': 1})


def test_ddpm_add_noise_at_step_zero_is_nearly_identity():
    policy = _policy(_small_config())
    clean = torch.rand(4, 8, ACTION_DIM) * 2 - 1
    noisy = policy.noise_scheduler.add_noise(clean, torch.randn_like(clean),
                                             torch.zeros(4, dtype=torch.long))
    assert torch.allclose(noisy, clean, atol=0.1)
    assert policy.noise_scheduler.config.num_train_timesteps == 100


@pytest.mark.parametrize('clip_sample', [True, False])
@pytest.mark.parametrize('steps', [4, 8, 16])
def test_ddim_chunk_is_finite_and_within_demonstrated_range(steps, clip_sample):
    policy = _policy(_small_config(clip_sample=clip_sample))
    states, _ = _demos(5, seed=1)
    chunk = policy.predict_action_chunk({'state': states}, num_inference_steps=steps)
    assert chunk.shape == (5, 8, ACTION_DIM) and torch.isfinite(chunk).all()
    assert len(policy.inference_scheduler.timesteps) == steps
    norm = policy.normalizers['action']
    assert torch.all(chunk >= torch.as_tensor(norm.low) - 1e-5)
    assert torch.all(chunk <= torch.as_tensor(norm.high) + 1e-5)


def test_fixed_generator_gives_identical_chunks():
    policy = _policy(_small_config())
    obs = {'state': _demos(2, seed=1)[0]}
    first = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))
    again = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))
    other = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_tiny_warm_start_strength_returns_nearly_the_warm_chunk():
    policy = _policy(_small_config())
    states, actions = _demos(3, seed=2)
    chunk = policy.predict_action_chunk({'state': states}, warm_start=actions,
                                        warm_start_strength=0.01)
    norm = policy.normalizers['action']
    assert torch.allclose(norm.normalize(chunk), norm.normalize(torch.as_tensor(actions)),
                          atol=0.1)


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    policy = _policy(_small_config())
    policy.save(tmp_path / 'policy')
    loaded = DiffusionPolicy.from_checkpoint(tmp_path / 'policy')
    assert loaded.config == policy.config and not loaded.training
    obs = {'state': _demos(2, seed=1)[0]}
    expected = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0))
    got = loaded.predict_action_chunk(obs, generator=torch.Generator().manual_seed(0))
    assert torch.equal(expected, got)


def _edit_config(path, **changes) -> None:
    envelope = json.loads((path / 'config.json').read_text())
    envelope['config'].update(changes)
    (path / 'config.json').write_text(json.dumps(envelope))


def test_checkpoint_with_mismatching_config_is_refused(tmp_path):
    path = tmp_path / 'policy'
    _policy(_small_config()).save(path)
    _edit_config(path, down_dims=[32, 64])
    with pytest.raises(ValueError, match=r'shape mismatch for unet.down.0.0.film.1.bias: '
                       r'checkpoint \(32,\), config expects \(64,\)'):
        DiffusionPolicy.from_checkpoint(path)
    _edit_config(path, down_dims=[16, 32, 64])
    with pytest.raises(ValueError, match=r'missing keys unet.down.1.2.bias.*\(\+\d+ more\)'):
        DiffusionPolicy.from_checkpoint(path)
    _edit_config(path, down_dims=[16, 32], action_dim=3)
    with pytest.raises(ValueError, match="'action' normaliser has 2 dims, config says 3"):
        DiffusionPolicy.from_checkpoint(path)
    stats = json.loads((path / 'normalization.json').read_text())
    stats['action'] = {'low': [0.0] * 3, 'high': [1.0] * 3}
    (path / 'normalization.json').write_text(json.dumps(stats))
    with pytest.raises(ValueError, match=r'shape mismatch for unet.*\(16, 2, 5\).*\(16, 3, 5\)'):
        DiffusionPolicy.from_checkpoint(path)


def test_ema_weights_are_swapped_in_and_restored():
    policy = _policy(_small_config())
    ema = create_ema(policy)
    snapshots = []
    for _ in range(2):
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(1.0)
        ema.step(policy.parameters())
        snapshots.append([p.detach().clone() for p in policy.parameters()])
    with ema_weights(policy, ema):
        inside = [p.detach().clone() for p in policy.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(snapshots[-1], policy.parameters()))
    # Warm-up decay 1 - (1 + step) ** -0.75: the first update copies, the second averages.
    decay = 1 - 2 ** -0.75
    assert all(torch.allclose(i, decay * old + (1 - decay) * new, atol=1e-5)
               for i, old, new in zip(inside, *snapshots))


def test_image_policy_trains_and_predicts_from_uint8_views():
    config = _small_config(obs_mode='state+image', views=('front', 'wrist'), image_size=(24, 24),
                           n_obs_steps=2, image_channels=(8, 16), image_feature_dim=8)
    policy = _policy(config).train()
    states, actions = _demos(4)
    images = torch.randint(0, 256, (4, 2, 2, 24, 24, 3), dtype=torch.uint8)
    batch = {'state': np.repeat(states, 2, axis=1), 'images': images, 'action': actions}
    loss = policy.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert policy.obs_encoder.image_encoder.trunks[0].project.weight.grad.abs().sum() > 0
    chunk = policy.eval().predict_action_chunk(batch, num_inference_steps=4)
    assert chunk.shape == (4, 8, ACTION_DIM)


def test_training_on_a_linear_expert_lowers_loss_and_approaches_targets():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    states, actions = _demos(2048)
    config = _small_config(down_dims=(32, 64), step_embed_dim=32)
    policy = DiffusionPolicy(config, fit_normalizers(config, actions, states)).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        index = rng.integers(0, len(states), 64)
        loss = policy.compute_loss({'state': states[index], 'action': actions[index]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    test_states, targets = _demos(64, seed=7)
    predicted = policy.eval().predict_action_chunk(
        {'state': test_states}, generator=torch.Generator().manual_seed(0)).numpy()
    error = np.abs(predicted - targets).mean()
    mean_action_error = np.abs(targets - actions.mean(axis=0)).mean()
    assert error < 0.6 * mean_action_error
