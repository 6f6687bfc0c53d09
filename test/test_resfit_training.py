"""The off-policy residual trainer end to end: run folder, demos, kind, resume, learning."""

import json
import shutil

from conftest import tiny_lift_bc
import numpy as np
import pytest
from visual_rl_stack.core.policy import open_policy, policy_kind, PolicyOptions
from visual_rl_stack.core.shipped_models import resolve_policy
from visual_rl_stack.data.collect import collect
from visual_rl_stack.residual_policy.diffusion_bc.batched_base import BatchedBasePolicy
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import DiffusionPolicy
from visual_rl_stack.residual_policy.diffusion_bc.runner import BCPolicyRunner
from visual_rl_stack.residual_policy.resfit.agent import resfit_config_for
from visual_rl_stack.residual_policy.resfit.demos import demo_transitions, load_demo_episodes
from visual_rl_stack.residual_policy.resfit.trainer import train_resfit
from visual_rl_stack.residual_policy.resip.agent import NormalisedSpace
from visual_rl_stack.residual_policy.resip.config import ResidualTrainSettings

SMALL = {'hidden_dims': (32,), 'critic_hidden_dims': (32,), 'batch_size': 16,
         'warmup_steps': 20, 'critic_warmup_updates': 10, 'utd': 0.5}


@pytest.fixture(scope='module')
def lift_base(tmp_path_factory):
    """Train a tiny state-based lift policy on two demonstrations (kept as demos too)."""
    root = tmp_path_factory.mktemp('resfit')
    tiny_lift_bc(root, 2, 20, 32)
    return root


def settings_for(root, **changes) -> ResidualTrainSettings:
    """Return short resfit settings over the tiny base."""
    values = {'task': 'lift', 'base': str(root / 'bc'), 'algo': 'resfit', 'envs': 2,
              'total_steps': 80, 'rollout_steps': 20, 'eval_every': 2, 'val_episodes': 2,
              'demos': str(root / 'data'), **changes}
    return ResidualTrainSettings(**values)


def test_a_short_run_writes_its_folder_opens_as_resfit_and_resumes(lift_base, tmp_path):
    out = tmp_path / 'run'
    summary = train_resfit(out, settings_for(lift_base), SMALL, progress=False,
                           asynchronous=False)
    assert summary['env_steps'] == 80 and summary['algo'] == 'resfit'
    for name in ('config.json', 'metrics.jsonl', 'validation.jsonl', 'learning_curve.png',
                 'summary.json', 'replay.npz', 'residual', 'residual_last', 'checkpoint'):
        assert (out / name).exists(), name
    rows = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    assert rows[-1]['learner']['updates'] > 0
    assert rows[-1]['rollout']['buffer'] > 0
    config = json.loads((out / 'config.json').read_text())
    assert config['kind'] == 'resfit' and config['resfit']['hidden_dims'] == [32]
    assert policy_kind(out) == 'resfit'
    policy = open_policy(out, PolicyOptions(device='cpu'))
    state = np.zeros(policy.config.state_dim, np.float32)
    assert policy.act_from_observation(state).shape == (policy.action_dim,)

    with pytest.raises(ValueError, match='--resume'):
        train_resfit(out, settings_for(lift_base), SMALL, progress=False, asynchronous=False)
    with pytest.raises(ValueError, match='other settings'):
        train_resfit(out, settings_for(lift_base, seed=3), SMALL, resume=True, progress=False,
                     asynchronous=False)
    resumed = train_resfit(out, settings_for(lift_base, total_steps=120), SMALL, resume=True,
                           progress=False, asynchronous=False)
    assert resumed['env_steps'] == 120
    assert len(json.loads((out / 'config.json').read_text())['sessions']) == 2


def test_an_untrained_resfit_run_acts_as_its_base(lift_base, tmp_path):
    out = tmp_path / 'fresh'
    train_resfit(out, settings_for(lift_base, total_steps=20, demos=None),
                 {**SMALL, 'warmup_steps': 1000}, progress=False, asynchronous=False)
    resfit = open_policy(out, PolicyOptions(device='cpu', noise_scale=0.0, seed=1))
    base = BCPolicyRunner(lift_base / 'bc', 'cpu', num_inference_steps=4, seed=1,
                          noise_scale=0.0)
    rng = np.random.default_rng(0)
    for _ in range(6):
        state = rng.normal(size=base.config.state_dim).astype(np.float32)
        np.testing.assert_allclose(resfit.act_from_observation(state),
                                   base.act_from_observation(state), rtol=1e-5, atol=1e-6)


def test_demonstration_actions_are_clipped_to_the_bound_or_kept_as_recorded(lift_base):
    policy = DiffusionPolicy.from_checkpoint(lift_base / 'bc' / 'checkpoint')
    space = NormalisedSpace(policy)
    episodes = load_demo_episodes(lift_base / 'data')
    bound = 0.01  # far below the tiny base's error: most steps need more than this

    def transitions(demo_actions: str) -> dict:
        config = resfit_config_for(policy, residual_scale=bound, n_step=1,
                                   demo_actions=demo_actions)
        base = BatchedBasePolicy(policy, len(episodes), 2, 0, 0.0,
                                 policy.config.executed_steps(None))
        return demo_transitions(episodes, base, space, config, 'sparse')

    clipped, recorded = transitions('clipped'), transitions('recorded')
    expected = np.concatenate([
        space.action_norm(e.action[:done], e.state[:done]).numpy()
        for e in episodes for done in [int(np.argmax(e.success)) + 1]])
    np.testing.assert_allclose(recorded['action'], expected, atol=1e-6)
    assert np.abs(clipped['action'] - clipped['base']).max() <= bound + 1e-6
    assert np.abs(recorded['action'] - recorded['base']).max() > 2 * bound
    np.testing.assert_array_equal(clipped['next_state'], recorded['next_state'])


def test_demonstrations_need_a_sparse_reward_and_resfit(lift_base, tmp_path):
    with pytest.raises(ValueError, match='sparse'):
        train_resfit(tmp_path / 'a', settings_for(lift_base, reward='subtasks'), SMALL,
                     progress=False, asynchronous=False)
    with pytest.raises(ValueError, match='resfit'):
        settings_for(lift_base, algo='ppo').check()


#: The shipped lift policy's translations pushed this far along x every step (m).
BIAS_M = 0.0025
#: A small, fast learner for the bias test (a larger correction bound than the default).
CORRECTOR = {'residual_scale': 0.2, 'hidden_dims': (64, 64), 'critic_hidden_dims': (64, 64),
             'batch_size': 64, 'warmup_steps': 480, 'critic_warmup_updates': 500,
             'actor_lr': 1e-5}


@pytest.fixture(scope='module')
def biased_lift(tmp_path_factory):
    """Return a folder with the shipped lift policy offset in x every step, and expert demos."""
    root = tmp_path_factory.mktemp('biased')
    shutil.copytree(resolve_policy('bc_state_lift'), root / 'base')
    stats = root / 'base' / 'checkpoint' / 'normalization.json'
    normalization = json.loads(stats.read_text())
    for bound in ('low', 'high'):  # the denormalised action moves by BIAS_M
        normalization['action'][bound][0] += BIAS_M
    stats.write_text(json.dumps(normalization))
    collect('lift', 10, root / 'demos', views=('front',), width=32, height=32)
    return root


def test_the_learner_corrects_a_biased_base(biased_lift, tmp_path):
    """Correct, within 3,000 steps, a base that misses the cube most of the time."""
    settings = ResidualTrainSettings(
        task='lift', base=str(biased_lift / 'base'), algo='resfit', envs=2, total_steps=3000,
        rollout_steps=60, base_inference_steps=4, base_noise_scale=0.0, eval_every=5,
        val_episodes=20, val_seed_start=5000, seed=0, demos=str(biased_lift / 'demos'))
    summary = train_resfit(tmp_path / 'run', settings, CORRECTOR, progress=False,
                           asynchronous=False)
    assert summary['baseline_val_success'] <= 0.4  # the bias makes the base miss
    assert summary['best_val_success'] >= summary['baseline_val_success'] + 0.3
    rows = [json.loads(line)
            for line in (tmp_path / 'run' / 'validation.jsonl').read_text().splitlines()]
    assert rows[-1]['env_steps'] == 3000
    assert rows[-1]['success_rate'] >= rows[0]['success_rate'] + 0.3  # and it holds
