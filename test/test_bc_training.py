"""Behaviour-cloning training: windows, a tiny run, its run folder, resume and CLI errors."""

import json
import os

import numpy as np
import pytest
import torch
from visual_rl_stack.cli.main import main
from visual_rl_stack.data.collect import collect
from visual_rl_stack.data.dataset import BagDataset
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import DiffusionPolicy
from visual_rl_stack.residual_policy.diffusion_bc.training.bc_windows import BCWindows
from visual_rl_stack.residual_policy.diffusion_bc.training.config import BCTrainSettings
from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import train_bc

SMALL = {'down_dims': (16, 32, 64), 'horizon': 8, 'n_obs_steps': 2, 'n_action_steps': 4,
         'step_embed_dim': 16}


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """Three lift episodes with one small camera."""
    return collect('lift', 3, tmp_path_factory.mktemp('bags'), views=('front',), width=32,
                   height=32)


@pytest.fixture(scope='module')
def run(bags, tmp_path_factory):
    """Train 60 steps on state; return (run folder, checkpoint)."""
    out = tmp_path_factory.mktemp('run') / 'bc'
    checkpoint = train_bc(BCTrainSettings(task='lift', data=str(bags), steps=60, batch_size=32,
                                          lr=1e-3, warmup=5, checkpoint_every=25, log_every=1),
                          out, config_overrides=SMALL, progress=False)
    return out, checkpoint


class _Episode:
    def __init__(self, length, offset):
        steps = np.arange(length, dtype=np.float32)[:, None] + offset
        self.state = np.hstack([steps, -steps])
        self.action = steps.copy()
        self.images = {'front': np.full((length, 4, 4, 3), offset, dtype=np.uint8)}


def test_windows_pad_with_the_first_step_and_the_last_action():
    windows = BCWindows([_Episode(5, 0), _Episode(3, 100)], n_obs_steps=2, horizon=4,
                        obs_mode='state+image')
    assert len(windows) == 8 and windows.state_dim == 2 and windows.action_dim == 1
    first = windows[0]
    assert first['state'][:, 0].tolist() == [0, 0]
    assert first['action'][:, 0].tolist() == [0, 0, 1, 2]
    assert windows[4]['action'][:, 0].tolist() == [3, 4, 4, 4]
    second = windows.batch(torch.tensor([5, 7]))
    assert second['state'][:, :, 0].tolist() == [[100, 100], [101, 102]]
    assert second['action'][1, :, 0].tolist() == [101, 102, 102, 102]
    assert second['images'].shape == (2, 2, 1, 4, 4, 3)
    assert second['images'].dtype == torch.uint8 and int(second['images'][0, 0, 0, 0, 0, 0]) == 100
    assert 'images' not in BCWindows([_Episode(5, 0)], 1, 4)[0]


def test_training_writes_a_complete_run_folder_and_a_loadable_checkpoint(run):
    out, checkpoint = run
    rows = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in rows] == list(range(1, 61))
    assert all(r['samples_per_s'] > 0 and r['lr'] >= 0 for r in rows)
    losses = [r['loss'] for r in rows]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert (out / 'loss.png').read_bytes()[:4] == b'\x89PNG'
    assert list((out / 'tensorboard').glob('events.out.tfevents.*'))
    assert {'date', 'machine', 'final_loss'} <= set(json.loads((out / 'summary.json').read_text()))
    config = json.loads((out / 'config.json').read_text())
    assert config['task'] == 'lift' and config['policy']['horizon'] == 8
    assert checkpoint == out / 'checkpoint'
    policy = DiffusionPolicy.from_checkpoint(checkpoint)
    episode = BagDataset(config['data']).episode(0)
    chunk = policy.predict_action_chunk({'state': episode.state[None, :2]},
                                        num_inference_steps=4)
    assert chunk.shape == (1, 8, episode.action.shape[1])
    assert torch.isfinite(chunk).all()


def test_resume_continues_from_the_saved_step(run, bags, capsys):
    out, _checkpoint = run
    before = (out / 'metrics.jsonl').read_text().splitlines()
    assert main(['train-bc', '--task', 'lift', '--data', str(bags), '--obs', 'state',
                 '--out', str(out), '--steps', '70', '--batch-size', '16', '--warmup', '5',
                 '--log-every', '5', '--resume', '--no-progress']) == 0
    assert 'step 70' in capsys.readouterr().out
    after = (out / 'metrics.jsonl').read_text().splitlines()
    assert after[:len(before)] == before
    assert [json.loads(line)['step'] for line in after[len(before):]] == [65, 70]
    assert json.loads((out / 'summary.json').read_text())['steps'] == 70
    state = torch.load(out / 'training_state.pt', weights_only=True)
    assert state['step'] == 70
    config = json.loads((out / 'config.json').read_text())
    assert [(s['from_step'], s['to_step']) for s in config['sessions']] == [(0, 60), (60, 70)]
    # Settings given on the command line apply; unset ones stay the run's own.
    assert (config['batch_size'], config['warmup'], config['log_every']) == (16, 5, 5)
    assert (config['lr'], config['checkpoint_every']) == (1e-3, 25)
    assert main(['train-bc', '--task', 'lift', '--data', str(bags), '--out', str(out),
                 '--steps', '70', '--resume']) == 2
    assert 'already at step 70' in capsys.readouterr().err
    assert main(['train-bc', '--task', 'lift', '--data', str(bags), '--out', str(out),
                 '--steps', '90']) == 2
    assert '--resume' in capsys.readouterr().err
    # A resume keeps the run's task, data and observations; the same data spelt otherwise is it.
    assert main(['train-bc', '--task', 'lift', '--data', os.path.relpath(bags), '--out',
                 str(out), '--steps', '70', '--resume']) == 2
    assert 'already at step 70' in capsys.readouterr().err
    assert main(['train-bc', '--task', 'lift', '--data', str(out), '--obs', 'state+image',
                 '--out', str(out), '--steps', '90', '--resume']) == 2
    assert 'was started with other settings (data, obs_mode)' in capsys.readouterr().err


def test_empty_or_mismatched_data_is_a_clear_cli_error(bags, tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    args = ['--obs', 'state', '--out', str(tmp_path / 'run'), '--steps', '2']
    assert main(['train-bc', '--task', 'lift', '--data', str(empty)] + args) == 2
    assert str(empty) in capsys.readouterr().err
    missing = tmp_path / 'missing'
    assert main(['train-bc', '--task', 'lift', '--data', str(missing)] + args) == 2
    assert f'data folder {missing} does not exist' in capsys.readouterr().err
    assert main(['train-bc', '--task', 'reach', '--data', str(bags)] + args) == 2
    assert "holds 'lift' episodes" in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


def test_relative_state_features_and_an_action_frame_train_and_run_from_the_cli(
        bags, tmp_path, capsys):
    out = tmp_path / 'relative'
    args = ['train-bc', '--task', 'lift', '--data', str(bags), '--out', str(out),
            '--batch-size', '16', '--warmup', '2', '--no-progress',
            '--set', 'down_dims=[16,32,64]', '--set', 'horizon=8', '--set', 'n_action_steps=4',
            '--set', 'step_embed_dim=16']
    assert main(args + ['--steps', '3', '--action-frame', 'ee_position', 'goal_position']) == 2
    assert 'not positions of the state layout' in capsys.readouterr().err
    assert main(args + ['--steps', '3', '--state-features', 'relative',
                        '--action-frame', 'ee_position', 'cube_position']) == 0
    config = json.loads((out / 'config.json').read_text())['policy']
    assert config['state_features'] == 'relative'
    assert config['action_frame'] == ['ee_position', 'cube_position']
    labels = [label for label, _ in config['state_labels']]
    assert labels[-2:] == ['cube_position', 'cube_orientation']
    policy = DiffusionPolicy.from_checkpoint(out / 'checkpoint')
    assert policy.normalizers['state'].dim == policy.state_features.output_dim > 24
    from visual_rl_stack.residual_policy.diffusion_bc.runner import (
        BCPolicyRunner)
    runner = BCPolicyRunner(out)
    action = runner.act_from_observation(BagDataset(bags).episode(0).state[0])
    assert action.shape == (7,) and np.all(np.isfinite(action))
    capsys.readouterr()
    assert main(args + ['--steps', '5', '--resume', '--state-features', 'raw']) == 2
    assert 'state_features' in capsys.readouterr().err
