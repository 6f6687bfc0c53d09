"""ResiP core: zero-initialised residual actor, critic, reward scaling, GAE and the PPO update."""

import json

import numpy as np
import pytest
import torch
from visual_rl_stack.residual_policy.resip.actor_critic import Critic, ResidualActor
from visual_rl_stack.residual_policy.resip.config import PPOConfig, ResidualConfig
from visual_rl_stack.residual_policy.resip.ppo import (compute_gae, make_optimizers, ppo_update,
                                                       RewardNormalizer, RunningMeanStd)


def _small_config(**overrides) -> ResidualConfig:
    settings = {'state_dim': 3, 'action_dim': 2, 'hidden_dims': (16, 16),
                'critic_hidden_dims': (16,)}
    settings.update(overrides)
    return ResidualConfig(**settings)


def test_residual_is_exactly_zero_at_init_and_combined_action_is_the_base():
    torch.manual_seed(0)
    actor = ResidualActor(_small_config())
    states = torch.randn(64, 3) * 10
    base = torch.rand(64, 2) * 2 - 1
    residual, log_prob = actor.act(states, base, deterministic=True)
    assert torch.equal(residual, torch.zeros_like(residual))
    assert torch.equal(actor.combine(base, residual), base)
    assert log_prob.shape == (64,)
    sample, _ = actor.act(states, base)
    assert torch.all(actor.combine(base, sample).abs() <= 1)
    # The noise is the configured fixed std around that zero mean.
    std = actor.distribution(states, base).stddev
    assert torch.allclose(std, torch.full_like(std, np.exp(-1.0)))


def test_combine_scales_the_residual_and_clamps_to_the_action_range():
    actor = ResidualActor(_small_config(residual_scale=0.5))
    base = torch.tensor([[0.2, 0.9]])
    combined = actor.combine(base, torch.tensor([[1.0, 1.0]]))
    assert torch.allclose(combined, torch.tensor([[0.7, 1.0]]))


def test_combine_never_clamps_the_base_action_itself():
    """A base action outside [-1, 1] is sent as is; a correction may only bring it back."""
    actor = ResidualActor(_small_config(residual_scale=0.5))
    base = torch.tensor([[1.3, -1.2]])
    assert torch.equal(actor.combine(base, torch.zeros_like(base)), base)
    outward = actor.combine(base, torch.tensor([[1.0, -1.0]]))
    assert torch.equal(outward, base)
    inward = actor.combine(base, torch.tensor([[-1.0, 1.0]]))
    assert torch.allclose(inward, torch.tensor([[0.8, -0.7]]))


def test_log_std_is_trainable_only_when_asked():
    fixed = ResidualActor(_small_config())
    learned = ResidualActor(_small_config(learn_log_std=True, init_log_std=-0.5))
    assert not fixed.log_std.requires_grad
    assert learned.log_std.requires_grad
    assert torch.allclose(learned.log_std, torch.full((2,), -0.5))
    optimizers = make_optimizers(fixed, Critic(_small_config()), PPOConfig())
    optimised = {id(p) for group in optimizers.actor.param_groups for p in group['params']}
    assert id(fixed.log_std) not in optimised


def test_states_are_clamped_before_the_networks():
    torch.manual_seed(0)
    config = _small_config(state_clip=2.0)
    actor, critic = ResidualActor(config), Critic(config)
    torch.nn.init.normal_(actor.mean_net[-1].weight)  # make the residual depend on the input
    base = torch.zeros(1, 2)
    extreme = torch.tensor([[50.0, -50.0, 0.3]])
    at_clip = torch.tensor([[2.0, -2.0, 0.3]])
    assert torch.equal(actor(extreme, base), actor(at_clip, base))
    assert torch.equal(critic(extreme, base), critic(at_clip, base))
    assert not torch.equal(actor(torch.tensor([[1.0, -1.0, 0.3]]), base), actor(at_clip, base))
    assert critic(extreme, base).shape == (1,)


def test_gae_matches_hand_computation_with_an_episode_end_in_the_middle():
    gamma, lam = 0.9, 0.8
    # Env 0: the episode ends after step 1 (observation 2 starts a new one).
    # Env 1: no end inside the rollout, but the observation after it starts one.
    rewards = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    values = torch.tensor([[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
    dones = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    last_value = torch.tensor([2.0, 10.0])
    last_done = torch.tensor([0.0, 1.0])
    advantages, returns = compute_gae(rewards, values, dones, last_value, last_done, gamma, lam)
    # Env 0: d2 = 3 + .9 * 2 - 1.5 = 3.3; d1 = 2 - 1 = 1 (no bootstrap);
    # d0 = 1 + .9 * 1 - .5 = 1.4, A0 = 1.4 + .72 * 1 = 2.12.
    # Env 1: A2 = 1 (last value ignored); A1 = 1 + .72; A0 = 1 + .72 * 1.72.
    expected = torch.tensor([[2.12, 1 + 0.72 * 1.72], [1.0, 1.72], [3.3, 1.0]])
    assert torch.allclose(advantages, expected)
    assert torch.allclose(returns, expected + values)


def test_running_mean_std_matches_numpy_over_batches():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(300, 2))
    rms = RunningMeanStd(shape=(2,), epsilon=1e-12)
    for chunk in np.array_split(data, 7):
        rms.update(chunk)
    assert np.allclose(rms.mean, data.mean(axis=0))
    assert np.allclose(rms.var, data.var(axis=0))


def test_reward_normalizer_scales_by_return_std_and_resets_on_done():
    rng = np.random.default_rng(0)
    gamma = 0.9
    normalizer = RewardNormalizer(num_envs=3, gamma=gamma, clip=100.0)
    rewards = rng.uniform(0, 4, size=(200, 3))
    returns, seen = np.zeros(3), []
    for step_rewards in rewards:
        returns = gamma * returns + step_rewards
        seen.append(returns.copy())
        scaled = normalizer(step_rewards, np.zeros(3))
    expected_var = np.var(np.concatenate(seen))
    assert np.isclose(normalizer.return_rms.var, expected_var, rtol=1e-3)
    assert np.allclose(scaled, rewards[-1] / np.sqrt(expected_var), rtol=1e-3)
    # An ended episode restarts its return; the others keep accumulating.
    before = normalizer.returns.copy()
    normalizer(np.ones(3), np.array([True, False, False]))
    assert normalizer.returns[0] == 0
    assert np.allclose(normalizer.returns[1:], gamma * before[1:] + 1)
    normalizer(np.full(3, 2.0), np.zeros(3))
    assert normalizer.returns[0] == 2.0


def test_reward_normalizer_clips_and_keeps_torch_type():
    normalizer = RewardNormalizer(num_envs=2, gamma=0.99, clip=5.0)
    # Equal first returns have almost no spread, so the scaled rewards hit the clip.
    scaled = normalizer(torch.tensor([-1.0, -1.0]), torch.tensor([False, False]))
    assert isinstance(scaled, torch.Tensor) and scaled.dtype == torch.float32
    assert torch.equal(scaled, torch.tensor([-5.0, -5.0]))
    # Sparse integer rewards are scaled, not truncated back to integers.
    scaled = normalizer(np.array([1, 0]), np.array([True, True]))
    assert scaled.dtype == np.float32 and 0 < scaled[0] < 5 and scaled[1] == 0


def _bandit_batch(actor: ResidualActor, critic: Critic, num_envs: int) -> dict:
    """Collect one step per env of reward -(action - 0.5)^2 with base action 0."""
    states = torch.ones(1, num_envs, 3)
    base = torch.zeros(1, num_envs, 1)
    residuals, log_probs = actor.act(states, base)
    with torch.no_grad():
        values = critic(states, base)
    rewards = -(actor.combine(base, residuals) - 0.5).pow(2).squeeze(-1)
    zeros = torch.zeros(num_envs)
    advantages, returns = compute_gae(rewards, values, torch.zeros_like(rewards), zeros,
                                      torch.ones(num_envs), 0.99, 0.95)
    return {'states': states, 'base_actions': base, 'residuals': residuals,
            'log_probs': log_probs, 'values': values, 'advantages': advantages,
            'returns': returns}


def test_ppo_moves_the_residual_toward_reward_on_a_bandit():
    torch.manual_seed(0)
    config = _small_config(action_dim=1, residual_scale=0.5)
    actor, critic = ResidualActor(config), Critic(config)
    ppo = PPOConfig(epochs=8, minibatches=4, actor_lr=3e-3)
    optimizers = make_optimizers(actor, critic, ppo)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        stats = ppo_update(actor, critic, optimizers, _bandit_batch(actor, critic, 256), ppo,
                           generator)
    mean, _ = actor.act(torch.ones(1, 3), torch.zeros(1, 1), deterministic=True)
    assert mean.item() > 0.5  # reward peaks at residual 1; it started at 0
    assert set(stats) >= {'policy_loss', 'value_loss', 'approx_kl', 'clip_fraction', 'epochs',
                          'explained_variance'}
    assert 0 <= stats['clip_fraction'] <= 1 and stats['approx_kl'] >= 0


def test_ppo_stops_epochs_early_when_kl_exceeds_target():
    torch.manual_seed(0)
    config = _small_config(action_dim=1)
    actor, critic = ResidualActor(config), Critic(config)
    ppo = PPOConfig(epochs=50, target_kl=1e-9)
    stats = ppo_update(actor, critic, make_optimizers(actor, critic, ppo),
                       _bandit_batch(actor, critic, 64), ppo)
    assert stats['early_stopped'] == 1.0
    assert stats['epochs'] == 1.0
    assert stats['approx_kl'] > 1e-9
    no_stop = PPOConfig(epochs=3, target_kl=None)
    stats = ppo_update(actor, critic, make_optimizers(actor, critic, no_stop),
                       _bandit_batch(actor, critic, 64), no_stop)
    assert stats['epochs'] == 3.0 and stats['early_stopped'] == 0.0


def test_critic_warmup_updates_fit_the_critic_and_leave_the_actor_alone():
    torch.manual_seed(0)
    config = _small_config(action_dim=1, residual_scale=0.5)
    actor, critic = ResidualActor(config), Critic(config)
    ppo = PPOConfig(epochs=4, target_kl=None, critic_warmup_updates=2)
    assert [ppo.trains_actor(n) for n in range(4)] == [False, False, True, True]
    optimizers = make_optimizers(actor, critic, ppo)
    actor_before = [p.detach().clone() for p in actor.parameters()]
    batch = _bandit_batch(actor, critic, 128)
    value_error = (critic(batch['states'], batch['base_actions']) - batch['returns']).abs().mean()
    stats = ppo_update(actor, critic, optimizers, batch, ppo, train_actor=False)
    assert all(torch.equal(a, b) for a, b in zip(actor_before, actor.parameters()))
    assert stats['actor_trained'] == 0.0 and stats['approx_kl'] == 0.0
    with torch.no_grad():
        fitted = (critic(batch['states'], batch['base_actions']) - batch['returns']).abs().mean()
    assert fitted < value_error
    stats = ppo_update(actor, critic, optimizers, batch, ppo)
    assert stats['actor_trained'] == 1.0
    assert not all(torch.equal(a, b) for a, b in zip(actor_before, actor.parameters()))
    with pytest.raises(ValueError, match='critic_warmup_updates'):
        PPOConfig(critic_warmup_updates=-1)


@pytest.mark.parametrize('cls, required', [(ResidualConfig, {'state_dim': 4, 'action_dim': 2}),
                                           (PPOConfig, {})])
def test_config_round_trips_through_json_and_refuses_unknown_keys(cls, required):
    config = cls(**required)
    assert cls.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match='unknown'):
        cls.from_dict({**config.to_dict(), 'bogus': 1})


def test_configs_reject_invalid_values():
    with pytest.raises(ValueError):
        ResidualConfig(state_dim=0, action_dim=2)
    with pytest.raises(ValueError):
        PPOConfig(gamma=1.5)
