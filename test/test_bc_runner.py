"""Running a trained BC policy in the simulator: observation layout, queue, ``vrl eval``."""

import json

import numpy as np
import pytest
import torch
from visual_rl_stack.cli.main import main
from visual_rl_stack.core.observation import sim_observation
from visual_rl_stack.data.collect import collect
from visual_rl_stack.data.dataset import BagDataset
from visual_rl_stack.residual_policy.diffusion_bc.runner import BCPolicyRunner
from visual_rl_stack.residual_policy.diffusion_bc.training.config import BCTrainSettings
from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import train_bc
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.scene import TabletopSim

TINY = {'down_dims': (16, 32, 64), 'horizon': 8, 'n_action_steps': 4}


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    """Record two lift episodes with a 32x32 front camera."""
    out = tmp_path_factory.mktemp('bc_runner') / 'data'
    return collect('lift', 2, out, views=('front',), width=32, height=32)


@pytest.fixture(scope='module')
def state_run(data_dir):
    """Train a tiny state-based run for 30 steps on the CPU."""
    run = data_dir.parent / 'run_state'
    train_bc(BCTrainSettings(task='lift', data=str(data_dir), steps=30, batch_size=32,
                             device='cpu'), run, config_overrides=TINY, progress=False)
    return run


def test_sim_observation_matches_the_dataset_state(data_dir, state_run):
    episode = BagDataset(data_dir).episode(0)
    sim = TabletopSim(SimConfig(task='lift', cameras=()))
    try:
        sim.reset(seed=0)
        state, images = sim_observation(sim, episode.state_labels)
    finally:
        sim.close()
    assert images == {}
    assert state.dtype == np.float32 and state.shape == episode.state[0].shape
    np.testing.assert_allclose(state, episode.state[0].astype(np.float32), rtol=0, atol=1e-6)
    assert np.array_equal(state, episode.state[0].astype(np.float32))
    other = TabletopSim(SimConfig(task='reach', cameras=()))
    try:
        other.reset(seed=0)
        with pytest.raises(ValueError, match='state layout'):
            sim_observation(other, episode.state_labels)
    finally:
        other.close()


def test_runner_replans_every_n_action_steps(state_run):
    runner = BCPolicyRunner(state_run / 'checkpoint', device='cpu', num_inference_steps=2)
    assert runner.action_mode == 'delta' and runner.task == 'lift'
    calls = []
    predict = runner.policy.predict_action_chunk

    def counting(*args, **kwargs):
        calls.append(1)
        return predict(*args, **kwargs)

    runner.policy.predict_action_chunk = counting
    state = np.zeros(runner.config.state_dim, dtype=np.float32)
    actions = [runner.act_from_observation(state) for _ in range(9)]
    assert len(calls) == 3 and len(runner.latencies_s) == 3
    assert all(a.shape == (runner.config.action_dim,) for a in actions)
    runner.reset()
    runner.act_from_observation(state)
    assert len(calls) == 4
    summary = runner.latency_summary_ms()
    assert summary['chunks'] == 4 and summary['steps'] == 10
    with pytest.raises(ValueError, match='absolute'):
        runner.check_compatible('lift', 'absolute')


def test_action_steps_override_replans_more_often(state_run):
    runner = BCPolicyRunner(state_run / 'checkpoint', device='cpu', num_inference_steps=2,
                            action_steps=2)
    assert runner.action_steps == 2 != runner.config.n_action_steps
    state = np.zeros(runner.config.state_dim, dtype=np.float32)
    for _ in range(9):
        runner.act_from_observation(state)
    assert len(runner.latencies_s) == 5
    most = runner.config.horizon - runner.config.n_obs_steps + 1
    for bad in (0, most + 1):
        with pytest.raises(ValueError, match='action_steps'):
            BCPolicyRunner(state_run / 'checkpoint', device='cpu', action_steps=bad)


def test_warm_start_plans_from_the_previous_chunk_tail(state_run):
    runner = BCPolicyRunner(state_run / 'checkpoint', device='cpu', num_inference_steps=4,
                            warm_start=0.5)
    starts, chunks = [], []
    predict = runner.policy.predict_action_chunk

    def recording(obs, **kwargs):
        starts.append((kwargs['warm_start'], kwargs['warm_start_strength']))
        chunks.append(predict(obs, **kwargs).numpy())
        return torch.from_numpy(chunks[-1])

    runner.policy.predict_action_chunk = recording
    state = np.zeros(runner.config.state_dim, dtype=np.float32)
    for _ in range(runner.action_steps + 1):
        runner.act_from_observation(state)
    assert len(starts) == 2 and starts[0][0] is None
    tail, strength = starts[1]
    steps, horizon = runner.action_steps, runner.config.horizon
    assert strength == 0.5 and tail.shape == (1, horizon, runner.config.action_dim)
    # Shifted by the executed steps: the next plan starts where this one left off.
    assert np.allclose(tail[0, :horizon - steps], chunks[0][0, steps:])
    assert np.allclose(tail[0, horizon - steps:], chunks[0][0, -1])
    runner.reset()
    runner.act_from_observation(state)
    assert starts[-1][0] is None
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match='warm_start'):
            BCPolicyRunner(state_run / 'checkpoint', device='cpu', warm_start=bad)


def test_noise_scale_zero_makes_the_policy_deterministic(state_run):
    def first_chunk(seed, noise_scale):
        runner = BCPolicyRunner(state_run / 'checkpoint', device='cpu', num_inference_steps=4,
                                seed=seed, noise_scale=noise_scale)
        state = np.linspace(-0.3, 0.3, runner.config.state_dim).astype(np.float32)
        return np.stack([runner.act_from_observation(state)
                         for _ in range(runner.action_steps)])

    np.testing.assert_array_equal(first_chunk(1, 0.0), first_chunk(2, 0.0))
    assert not np.allclose(first_chunk(1, 1.0), first_chunk(2, 1.0))
    runner = BCPolicyRunner(state_run / 'checkpoint', device='cpu')
    assert runner.noise_scale == 1.0
    for bad in (-0.1, float('nan')):
        with pytest.raises(ValueError, match='noise_scale'):
            BCPolicyRunner(state_run / 'checkpoint', device='cpu', noise_scale=bad)


def _eval(run, tmp_path, name, *extra):
    out = tmp_path / f'{name}.json'
    code = main(['eval', '--task', 'lift', '--policy', str(run), '--episodes', '2',
                 '--seed-start', '1000', '--json', str(out), '--no-progress',
                 '--device', 'cpu', '--inference-steps', '2', *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_vrl_eval_runs_a_bc_run(state_run, tmp_path):
    result = _eval(state_run, tmp_path, 'state')
    assert [e['seed'] for e in result['per_episode']] == [1000, 1001]
    assert result['mean_episode_length'] == np.mean([e['steps'] for e in result['per_episode']])
    latency = result['inference_latency_ms']
    for key in ('median', 'p99', 'per_step_amortised'):
        assert latency[key] > 0
    total_steps = sum(e['steps'] for e in result['per_episode'])
    assert latency['steps'] == total_steps
    assert latency['chunks'] == sum(-(-e['steps'] // 4) for e in result['per_episode'])
    assert result['noise_scale'] == 1.0
    assert _eval(state_run, tmp_path, 'mode', '--noise-scale', '0')['noise_scale'] == 0.0


def test_vrl_eval_runs_an_image_run(data_dir, tmp_path):
    run = tmp_path / 'run_image'
    checkpoint = train_bc(BCTrainSettings(task='lift', data=str(data_dir), obs_mode='image',
                                          steps=5, batch_size=8, device='cpu'), run,
                          config_overrides={**TINY, 'image_channels': (8, 16),
                                            'num_keypoints': 8, 'image_feature_dim': 16},
                          progress=False)
    result = _eval(checkpoint, tmp_path, 'image')
    assert len(result['per_episode']) == 2
    assert result['inference_latency_ms']['chunks'] > 0


def test_bad_policy_path_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / 'no_such_run'
    assert main(['eval', '--task', 'lift', '--policy', str(missing), '--episodes', '1',
                 '--no-progress']) == 2
    err = capsys.readouterr().err
    assert 'no_such_run' in err and 'is neither a shipped model' in err
    assert main(['eval', '--task', 'lift', '--policy', str(tmp_path), '--episodes', '1',
                 '--no-progress']) == 2
    assert 'not a BC run folder' in capsys.readouterr().err
