"""MAE training end to end on bags collected in the test: run folder, checkpoint, pictures."""

import json

import numpy as np
import pytest
import torch
from visual_rl_stack.core.checkpoints import read_checkpoint_config
from visual_rl_stack.data.collect import collect
from visual_rl_stack.world_model.held_out import split_bags
from visual_rl_stack.world_model.mae.data import load_frames, sample_clips
from visual_rl_stack.world_model.mae.model import MAEConfig
from visual_rl_stack.world_model.mae.training import MAETrainSettings, train_mae

torch.set_num_threads(1)
CONFIG = MAEConfig(views=('front', 'wrist'), image_size=32, patch_size=8, width=32,
                   encoder_layers=1, decoder_layers=1, heads=2, stem_channels=(16, 16))


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """Return a folder of three lift episodes recorded at 48 pixels (resized to 32)."""
    return collect('lift', 3, tmp_path_factory.mktemp('bags'), views=('front', 'wrist'),
                   width=48, height=48)


def test_frames_carry_staged_progress_and_clips_stay_in_a_key_horizon(bags):
    train, _ = split_bags(bags, 0.1)
    frames = load_frames(train, 'lift', CONFIG.views, CONFIG.image_size)
    assert frames.images.shape[1:] == (2, 32, 32, 3) and frames.images.dtype == np.uint8
    # Rows are the states before each command: an episode's last row is just short of done.
    assert frames.progress.min() < 0.1 and 0.8 < frames.progress.max() < 1.0
    clips = sample_clips(frames, 64, 3, np.random.default_rng(0))
    assert clips.shape == (64, 3)
    assert np.all(frames.horizon[clips] == frames.horizon[clips[:, :1]])
    assert np.all(np.diff(clips, axis=1) >= 0)


def test_train_mae_writes_a_run_that_rebuilds(bags, tmp_path):
    settings = MAETrainSettings('lift', str(bags), steps=30, batch=4, log_every=10,
                                val_batches=1)
    summary = train_mae(settings, CONFIG, tmp_path / 'run', show_progress=False)
    run = tmp_path / 'run'
    rows = [json.loads(line) for line in (run / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in rows] == [10, 20, 30] and summary['steps'] == 30
    assert summary['held_out_frames'] > 0
    assert json.loads((run / 'config.json').read_text())['held_out_bags'] == ['lift_seed0002']
    config, _ = read_checkpoint_config(run / 'mae', 'world_model_mae')
    assert MAEConfig.from_dict(config) == CONFIG
    for picture in ('curves.png', 'reconstruction.png'):
        assert (run / picture).read_bytes()[:4] == b'\x89PNG'
    assert list((run / 'tensorboard').glob('events.out.tfevents.*'))
    written = json.loads((run / 'summary.json').read_text())
    assert written == summary and {'date', 'machine'} <= set(written)


def test_one_bag_is_too_few(bags, tmp_path):
    single = tmp_path / 'one'
    collect('lift', 1, single, views=('front',), width=32, height=32)
    with pytest.raises(ValueError, match='at least 2'):
        split_bags(single, 0.1)
