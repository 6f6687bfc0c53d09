"""The RSSM: shapes, KL, a negative ELBO that falls on a tiny dataset, checkpoints, windows."""

import numpy as np
import pytest
import torch
from visual_rl_stack.core.checkpoints import load_checkpoint
from visual_rl_stack.world_model.dynamics.rssm import gaussian_kl, RSSM, RSSM_KIND, RSSMConfig
from visual_rl_stack.world_model.dynamics.sequences import (EmbedNormalizer, EpisodeSequence,
                                                            proprioception, relabelled_rewards,
                                                            SequenceBuffer)
from visual_rl_stack.world_model.dynamics.training import save_rssm

torch.set_num_threads(1)
SMALL = RSSMConfig(embed_size=6, action_size=2, deter=24, stoch=4, hidden=24)


def moving_point_episode(rng: np.random.Generator, steps: int = 20) -> EpisodeSequence:
    """Return an episode of a point pushed by its actions, seen through a fixed linear map."""
    mixing = np.array([[1.0, 0.0, 0.5, 0.2, -0.3, 0.1], [0.0, 1.0, -0.5, 0.4, 0.3, -0.2]])
    position, embeds, actions = rng.uniform(-1, 1, 2), [], []
    for _ in range(steps):
        embeds.append(position @ mixing)
        action = rng.uniform(-1, 1, 2)
        actions.append(action)
        position = np.clip(position + 0.2 * action, -1.5, 1.5)
    rewards = -np.linalg.norm(np.array(embeds)[:, :2], axis=1)
    continues = np.ones(steps, np.float32)
    return EpisodeSequence(np.array(embeds, np.float32), np.array(actions, np.float32),
                           rewards.astype(np.float32), continues, False, True)


@pytest.fixture(scope='module')
def buffer() -> SequenceBuffer:
    rng = np.random.default_rng(0)
    episodes = [moving_point_episode(rng) for _ in range(12)]
    buffer = SequenceBuffer(EmbedNormalizer.fit(episodes))
    for episode in episodes:
        buffer.add(episode)
    return buffer


def test_observe_and_imagine_shapes():
    rssm = RSSM(SMALL)
    posterior, prior = rssm.observe(torch.randn(3, 5, 6), torch.zeros(3, 5, 2))
    assert posterior.deter.shape == (3, 5, 24) and prior.stoch.shape == (3, 5, 4)
    assert posterior.features.shape == (3, 5, SMALL.feature_size)
    step = rssm.img_step(rssm.initial(3), torch.zeros(3, 2))
    reward, logit = rssm.predict(step.features)
    assert reward.shape == logit.shape == (3,)


def test_kl_is_zero_for_equal_gaussians_and_positive_otherwise():
    mean, std = torch.randn(4, 3), torch.rand(4, 3) + 0.1
    assert torch.allclose(gaussian_kl(mean, std, mean, std), torch.zeros(4), atol=1e-6)
    assert torch.all(gaussian_kl(mean, std, mean + 1.0, std) > 0)
    # KL(N(0,1) || N(1,1)) = 1/2 per dimension.
    one = torch.ones(1, 3)
    assert torch.allclose(gaussian_kl(0 * one, one, one, one), torch.tensor([1.5]))


def test_negative_elbo_falls_on_a_tiny_dataset(buffer):
    torch.manual_seed(0)
    rssm = RSSM(SMALL)
    optimiser = torch.optim.Adam(rssm.parameters(), lr=3e-3)
    rng = np.random.default_rng(1)
    held = buffer.sample(16, 10, np.random.default_rng(99))

    def held_out() -> dict:
        with torch.no_grad():
            torch.manual_seed(5)
            return rssm.losses(held)[0]

    before = held_out()
    for _ in range(300):
        losses, _ = rssm.losses(buffer.sample(16, 10, rng))
        optimiser.zero_grad()
        losses['loss'].backward()
        optimiser.step()
    after = held_out()
    assert float(after['loss']) < 0.5 * float(before['loss'])
    assert float(after['embed']) < 0.3 * float(before['embed'])
    assert float(after['reward']) < 0.5 * float(before['reward'])


def test_checkpoint_round_trip_and_reward_head_reset(buffer, tmp_path):
    rssm = RSSM(SMALL)
    save_rssm(tmp_path / 'rssm', rssm, buffer.normalizer, 'stack', 'planner_stages', 7)
    loaded = load_checkpoint(tmp_path / 'rssm', lambda c, _: RSSM(RSSMConfig.from_dict(c['rssm'])),
                             RSSM_KIND)
    for key, value in rssm.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    torch.manual_seed(3)
    loaded.reset_reward_head()
    changed = {k for k, v in loaded.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith('reward_head.') for k in changed)


def test_windows_stay_in_episodes_with_the_previous_action(buffer):
    batch = buffer.sample(32, 8, np.random.default_rng(2))
    assert batch['embeds'].shape == (32, 8, 6) and batch['actions'].shape == (32, 8, 2)
    # Inside a window, the action before step t is the action at step t - 1.
    assert torch.equal(batch['prev_actions'][:, 1:], batch['actions'][:, :-1])
    with pytest.raises(ValueError, match='at least 50 steps'):
        buffer.sample(2, 50, np.random.default_rng(0))
    with pytest.raises(ValueError, match='no episode'):
        buffer.sample(2, 8, np.random.default_rng(0), demo=False)


def test_online_episodes_beyond_capacity_replace_the_oldest_not_the_demonstrations():
    rng = np.random.default_rng(0)
    demo = moving_point_episode(rng)
    buffer = SequenceBuffer(EmbedNormalizer.fit([demo]), capacity=2)
    buffer.add(demo)
    online = []
    for _ in range(3):
        episode = moving_point_episode(rng)
        episode.demo = False
        online.append(episode)
        buffer.add(episode)
    assert buffer.episodes == [demo, online[1], online[2]]
    assert buffer.steps(demo=True) == 20 and buffer.steps() == 60


def test_relabelled_rewards_pay_progress_as_a_potential_and_success_on_top():
    success = np.array([False, False, False, True])
    progress = np.array([0.0, 0.2, 0.5, 0.9])
    staged = relabelled_rewards(success, progress, 'planner_stages', alpha=0.5, gamma=1.0)
    assert np.allclose(staged, [0.1, 0.15, 0.2, 1.0])
    assert np.array_equal(relabelled_rewards(success, progress, 'sparse'), [0, 0, 0, 1])
    with pytest.raises(ValueError, match='reward must be'):
        relabelled_rewards(success, progress, 'dense')


def test_proprioception_is_the_state_head_and_short_states_are_refused():
    state = np.arange(20, dtype=np.float32).reshape(2, 10)
    assert np.array_equal(proprioception(state), state[:, :8])
    with pytest.raises(ValueError, match='at least 8'):
        proprioception(np.zeros(5))
