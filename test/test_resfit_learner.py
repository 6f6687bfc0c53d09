"""The off-policy residual learner's core: n-step transitions, targets, batches, resume."""

import numpy as np
import pytest
import torch
from visual_rl_stack.residual_policy.resfit.config import ResFiTConfig
from visual_rl_stack.residual_policy.resfit.learner import ResFiTLearner
from visual_rl_stack.residual_policy.resfit.networks import combine
from visual_rl_stack.residual_policy.resfit.replay import (episode_transitions, NStepAssembler,
                                                           ReplayBuffer, sample_mixed)

S, A = 3, 2
GAMMA = 0.9


def small_config(**overrides) -> ResFiTConfig:
    """Return a learner config with tiny networks."""
    values = {'state_dim': S, 'action_dim': A, 'hidden_dims': (16,),
              'critic_hidden_dims': (16,), 'batch_size': 8, 'gamma': GAMMA,
              'critic_warmup_updates': 0, **overrides}
    return ResFiTConfig(**values)


def step_arrays(t: int, envs: int = 1):
    """Return per-env state, base and action arrays that encode the step number ``t``."""
    return (np.full((envs, S), t, np.float32), np.full((envs, A), t, np.float32),
            np.full((envs, A), -t, np.float32))


def test_n_step_transitions_sum_discounted_rewards_and_bootstrap_after_n_steps():
    assembler = NStepAssembler(1, 3, GAMMA, S, A)
    emitted = []
    for t, reward in enumerate([1.0, 2.0, 3.0, 4.0]):
        state, base, action = step_arrays(t)
        nxt_state, nxt_base, _ = step_arrays(t + 1)
        emitted.append(assembler.add(state, base, action, np.array([reward]), np.array([False]),
                                     np.array([False]), nxt_state, nxt_base))
    assert [len(batch['reward']) for batch in emitted] == [0, 0, 1, 1]
    first, second = emitted[2], emitted[3]
    assert first['reward'][0] == pytest.approx(1 + GAMMA * 2 + GAMMA ** 2 * 3)
    assert first['discount'][0] == pytest.approx(GAMMA ** 3)
    assert first['state'][0, 0] == 0 and first['next_state'][0, 0] == 3
    assert second['reward'][0] == pytest.approx(2 + GAMMA * 3 + GAMMA ** 2 * 4)
    assert second['next_base'][0, 0] == 4


def test_success_stops_bootstrapping_and_a_time_limit_does_not():
    for terminated, discounts in ((True, [0.0, 0.0]), (False, [GAMMA ** 2, GAMMA])):
        assembler = NStepAssembler(1, 3, GAMMA, S, A)
        state, base, action = step_arrays(0)
        assembler.add(state, base, action, np.array([0.0]), np.array([False]),
                      np.array([False]), *step_arrays(1)[:2])
        state, base, action = step_arrays(1)
        last_state, last_base, _ = step_arrays(7)
        out = assembler.add(state, base, action, np.array([1.0]), np.array([terminated]),
                            np.array([not terminated]), last_state, last_base)
        # Both open windows end with the episode: rewards 0 + g * 1 and 1.
        np.testing.assert_allclose(out['reward'], [GAMMA, 1.0], rtol=1e-6)
        np.testing.assert_allclose(out['discount'], discounts, rtol=1e-6)
        assert (out['next_state'] == 7).all()  # the episode's own last observation
        assert not any(assembler.pending)


def test_parallel_environments_keep_separate_windows():
    assembler = NStepAssembler(2, 2, GAMMA, S, A)
    state, base, action = step_arrays(0, envs=2)
    out = assembler.add(state, base, action, np.array([1.0, 5.0]), np.array([False, True]),
                        np.array([False, False]), state + 1, base + 1)
    assert len(out['reward']) == 1 and out['reward'][0] == 5.0  # env 1 succeeded at once
    out = assembler.add(state + 1, base + 1, action, np.array([2.0, 7.0]),
                        np.array([False, False]), np.array([False, False]), state + 2, base + 2)
    assert out['reward'][0] == pytest.approx(1 + GAMMA * 2)  # env 0's first window closes
    assert len(out['reward']) == 1  # env 1's new episode has one step so far


def test_episode_transitions_of_a_successful_demo_end_without_bootstrap():
    steps = 4
    state = np.arange(steps * S, dtype=np.float32).reshape(steps, S)
    base = np.zeros((steps, A), np.float32)
    rewards = np.array([0, 0, 0, 1], np.float32)
    out = episode_transitions(state, base, base, rewards, True, state[-1], base[-1], 3, GAMMA)
    assert len(out['reward']) == steps
    np.testing.assert_allclose(out['reward'], [0, GAMMA ** 2, GAMMA, 1], rtol=1e-6)
    np.testing.assert_allclose(out['discount'], [GAMMA ** 3, 0, 0, 0], rtol=1e-6)


def test_td_target_takes_the_minimum_of_a_critic_subset():
    config = small_config(critics=3, target_subset=2, target_noise=0.0)
    learner = ResFiTLearner(config, seed=0)
    with torch.no_grad():  # critic k predicts the constant 10 * (k + 1)
        last = learner.critic_target.net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1))
    batch = {'reward': torch.tensor([1.0, 0.5]), 'discount': torch.tensor([0.5, 0.0]),
             'next_state': torch.zeros(2, S), 'next_base': torch.zeros(2, A)}
    targets = set()
    for _ in range(30):
        subset_min = learner.td_target(batch)
        assert subset_min[1] == pytest.approx(0.5)  # terminal: the reward only
        targets.add(round(float(subset_min[0]), 4))
    # The minimum of a random pair of {10, 20, 30}: 10 (pairs with critic 0) or 20.
    assert targets == {1 + 0.5 * 10, 1 + 0.5 * 20}


def test_batches_hold_the_demonstration_share():
    online, demos = ReplayBuffer(100, S, A), ReplayBuffer(100, S, A)
    for buffer, value in ((online, 1.0), (demos, -1.0)):
        buffer.add({'state': np.full((50, S), value, np.float32),
                    'base': np.zeros((50, A), np.float32), 'action': np.zeros((50, A), np.float32),
                    'reward': np.full(50, value, np.float32),
                    'next_state': np.zeros((50, S), np.float32),
                    'next_base': np.zeros((50, A), np.float32),
                    'discount': np.ones(50, np.float32)})
    rng = np.random.default_rng(0)
    batch = sample_mixed(online, demos, 64, 0.25, rng)
    assert (batch['reward'] == -1).sum() == 16 and (batch['reward'] == 1).sum() == 48
    assert (sample_mixed(online, None, 64, 0.25, rng)['reward'] == 1).all()


def test_ring_buffer_keeps_the_newest_and_round_trips(tmp_path):
    buffer = ReplayBuffer(5, S, A)
    for start in (0, 3):
        count = 3
        buffer.add({'state': np.zeros((count, S), np.float32),
                    'base': np.zeros((count, A), np.float32),
                    'action': np.zeros((count, A), np.float32),
                    'reward': np.arange(start, start + count, dtype=np.float32),
                    'next_state': np.zeros((count, S), np.float32),
                    'next_base': np.zeros((count, A), np.float32),
                    'discount': np.ones(count, np.float32)})
    assert len(buffer) == 5 and sorted(buffer.data['reward']) == [1, 2, 3, 4, 5]
    buffer.save(tmp_path / 'replay.npz')
    again = ReplayBuffer(5, S, A)
    again.load(tmp_path / 'replay.npz')
    np.testing.assert_array_equal(again.data['reward'][:5], [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match='width'):
        ReplayBuffer(5, S + 1, A).load(tmp_path / 'replay.npz')


def test_the_untrained_policy_is_the_base_exactly():
    learner = ResFiTLearner(small_config(), seed=0)
    state = torch.randn(20, S) * 5
    base = torch.rand(20, A) * 2 - 1
    assert torch.equal(learner.act(state, base), base)
    # Outside [-1, 1] (a framed base seen in a later step's frame) the base passes unchanged too.
    wide = base * 1.5
    assert torch.equal(learner.act(state, wide), wide)


def test_combine_bounds_the_correction():
    config = small_config(residual_scale=0.1)
    base = torch.tensor([[0.0, 0.95]])
    sent = combine(config, base, torch.tensor([[1.0, 1.0]]))
    np.testing.assert_allclose(sent.numpy(), [[0.1, 1.0]], rtol=1e-6)


def filled_buffer(seed: int) -> ReplayBuffer:
    """Return a buffer of random transitions."""
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(200, S, A)
    buffer.add({'state': rng.normal(size=(200, S)).astype(np.float32),
                'base': rng.uniform(-1, 1, (200, A)).astype(np.float32),
                'action': rng.uniform(-1, 1, (200, A)).astype(np.float32),
                'reward': rng.uniform(size=200).astype(np.float32),
                'next_state': rng.normal(size=(200, S)).astype(np.float32),
                'next_base': rng.uniform(-1, 1, (200, A)).astype(np.float32),
                'discount': np.full(200, GAMMA ** 3, np.float32)})
    return buffer


def test_a_resumed_learner_makes_the_same_next_update(tmp_path):
    config = small_config()
    buffer = filled_buffer(1)
    learner = ResFiTLearner(config, seed=4)
    for _ in range(5):
        learner.update(learner.sample(buffer, None))
    saved = {'actor': {k: v.clone() for k, v in learner.actor.state_dict().items()},
             'critic': {k: v.clone() for k, v in learner.critic.state_dict().items()},
             **learner.training_state()}
    torch.save(saved, tmp_path / 'state.pt')
    buffer.save(tmp_path / 'replay.npz')
    learner.update(learner.sample(buffer, None))  # the uninterrupted run's next update

    resumed = ResFiTLearner(config, seed=99)
    restored = torch.load(tmp_path / 'state.pt', weights_only=True)
    resumed.actor.load_state_dict(restored['actor'])
    resumed.critic.load_state_dict(restored['critic'])
    resumed.load_training_state(restored)
    reloaded = ReplayBuffer(200, S, A)
    reloaded.load(tmp_path / 'replay.npz')
    resumed.update(resumed.sample(reloaded, None))
    for name, value in learner.critic.state_dict().items():
        torch.testing.assert_close(resumed.critic.state_dict()[name], value, rtol=0, atol=0)
    for name, value in learner.actor.state_dict().items():
        torch.testing.assert_close(resumed.actor.state_dict()[name], value, rtol=0, atol=0)


def test_critic_fits_targets_and_actor_moves_toward_higher_q():
    """On a bandit where reward = -|action - 0.5|, the actor's action climbs toward 0.5."""
    config = small_config(residual_scale=1.0, actor_lr=3e-3, critic_lr=3e-3, batch_size=64,
                          actor_delay=1, exploration_std=0.0, target_noise=0.0)
    learner = ResFiTLearner(config, seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (2000, A)).astype(np.float32)
    buffer = ReplayBuffer(2000, S, A)
    buffer.add({'state': np.zeros((2000, S), np.float32), 'base': np.zeros((2000, A), np.float32),
                'action': actions, 'reward': -np.abs(actions - 0.5).sum(1).astype(np.float32),
                'next_state': np.zeros((2000, S), np.float32),
                'next_base': np.zeros((2000, A), np.float32),
                'discount': np.zeros(2000, np.float32)})
    for _ in range(600):
        learner.update(learner.sample(buffer, None))
    chosen = learner.act(torch.zeros(1, S), torch.zeros(1, A))
    np.testing.assert_allclose(chosen.numpy(), [[0.5, 0.5]], atol=0.15)


class DisputedCritic(torch.nn.Module):
    """Two critics: both value the correction's second dimension; only one values the first."""

    def forward(self, state, base, action):
        correction = action - base
        return torch.stack([2 * correction[:, 0] + correction[:, 1], correction[:, 1]])


@pytest.mark.parametrize('pessimism', [0.0, 2.0])
def test_a_pessimistic_actor_leaves_alone_what_the_critics_dispute(pessimism):
    learner = ResFiTLearner(small_config(critics=2, actor_pessimism=pessimism, actor_l2=0.0,
                                         actor_lr=1e-2, residual_scale=1.0), seed=0)
    learner.critic = DisputedCritic()
    batch = {'state': torch.randn(64, S), 'base': torch.zeros(64, A)}
    for _ in range(100):
        learner._actor_step(batch)
    residual = learner.actor(batch['state'], batch['base']).mean(dim=0)
    assert residual[1] > 0.3  # agreed on: taken either way
    if pessimism:
        assert abs(residual[0]) < 0.05  # disputed: mean - 2 std gains nothing either way
    else:
        assert residual[0] > 0.3  # the mean alone favours it


@pytest.mark.parametrize('bad, message', [
    ({'target_subset': 3}, 'target_subset'), ({'demo_ratio': 1.0}, 'demo_ratio'),
    ({'demo_actions': 'expert'}, 'demo_actions must be one of clipped, recorded')])
def test_settings_the_learner_cannot_honour_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        small_config(**bad)
