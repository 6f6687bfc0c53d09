"""Shipped models: adding a run (float16 or float32, card, retrain commands), listing, names."""

import json
import sys

import numpy as np
import pytest
from safetensors.torch import load_file
import torch
from visual_rl_stack.cli.main import main
from visual_rl_stack.core import shipped_models as models
from visual_rl_stack.core.policy import open_policy, PolicyOptions
from visual_rl_stack.data.collect import collect
from visual_rl_stack.residual_policy.diffusion_bc.runner import BCPolicyRunner
from visual_rl_stack.residual_policy.diffusion_bc.training.config import BCTrainSettings
from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import train_bc
from visual_rl_stack.residual_policy.resip.agent import ResidualPolicyRunner

TINY = {'down_dims': (16, 32, 64), 'horizon': 8, 'n_action_steps': 4}


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """Collect one lift episode and train a tiny run, both recorded as `vrl` commands."""
    root = tmp_path_factory.mktemp('models')
    saved = sys.argv
    try:
        sys.argv = ['/somewhere/bin/vrl', 'collect', '--task', 'lift', '--episodes', '1']
        data = collect('lift', 1, root / 'data', views=('front',), width=32, height=32)
        sys.argv = ['/somewhere/bin/vrl', 'train-bc', '--task', 'lift', '--steps', '5']
        train_bc(BCTrainSettings(task='lift', data=str(data), steps=5, batch_size=16,
                                 device='cpu'), root / 'run', config_overrides=TINY,
                 progress=False)
    finally:
        sys.argv = saved
    return root / 'run'


def test_add_ships_a_small_float16_copy_with_its_card(run, tmp_path):
    evaluation = {'task': 'lift', 'episodes': 3, 'seed_start': 1000, 'successes': 1,
                  'success_rate': 1 / 3, 'per_episode': [{'seed': 1000}]}
    model = models.add_model(run, 'bc_lift_tiny', evaluation, folder=tmp_path,
                             description='a test model')
    assert model.path == tmp_path / 'bc_lift_tiny'
    card = json.loads((model.path / models.MODEL_CARD).read_text())
    assert card['task'] == 'lift' and card['obs_mode'] == 'state'
    assert card['weights_dtype'] == 'float16'
    assert card['retrain'] == ['vrl collect --task lift --episodes 1',
                               'vrl train-bc --task lift --steps 5']
    assert card['evaluation']['success_rate'] == pytest.approx(1 / 3)
    assert 'per_episode' not in card['evaluation']
    assert not (model.path / 'training_state.pt').exists()
    weights = load_file(str(model.path / 'checkpoint' / 'model.safetensors'))
    assert {str(t.dtype) for t in weights.values() if t.is_floating_point()} == {
        'torch.float16'}
    # The shipped copy acts like the run it came from (float16 rounding only).
    state = np.linspace(-0.5, 0.5, 24).astype(np.float32)
    chunks = []
    for path in (run, models.resolve_policy('bc_lift_tiny', tmp_path)):
        runner = BCPolicyRunner(path, device='cpu', num_inference_steps=4, seed=3)
        chunks.append(runner.act_from_observation(state))
    np.testing.assert_allclose(chunks[0], chunks[1], atol=2e-2)


def test_add_can_keep_float32_weights_bitwise(run, tmp_path):
    model = models.add_model(run, 'bc_lift_full', folder=tmp_path, weights_dtype='float32')
    card = json.loads((model.path / models.MODEL_CARD).read_text())
    assert card['weights_dtype'] == 'float32'
    trained = load_file(str(run / 'checkpoint' / 'model.safetensors'))
    shipped = load_file(str(model.path / 'checkpoint' / 'model.safetensors'))
    assert trained.keys() == shipped.keys()
    assert all(torch.equal(trained[k], shipped[k]) for k in trained)
    state = np.linspace(-0.5, 0.5, 24).astype(np.float32)
    chunks = [BCPolicyRunner(path, device='cpu', num_inference_steps=4,
                             seed=3).act_from_observation(state)
              for path in (run, model.path)]
    np.testing.assert_array_equal(chunks[0], chunks[1])
    with pytest.raises(ValueError, match='weights_dtype'):
        models.add_model(run, 'x', folder=tmp_path / 'out', weights_dtype='int8')


def test_add_refuses_what_it_cannot_ship(run, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match='not a training run'):
        models.add_model(tmp_path, 'x', folder=tmp_path / 'out')
    with pytest.raises(ValueError, match='task'):
        models.add_model(run, 'x', {'task': 'push'}, folder=tmp_path / 'out')
    with pytest.raises(ValueError, match='invalid model name'):
        models.add_model(run, '../x', folder=tmp_path / 'out')
    monkeypatch.setattr(models, 'MAX_MODEL_BYTES', 1000)
    with pytest.raises(ValueError, match='limit'):
        models.add_model(run, 'too_big', folder=tmp_path / 'out')
    assert list((tmp_path / 'out').iterdir()) == []  # nothing half-written is left


def test_resolution_and_listing(run, tmp_path, monkeypatch, capsys):
    models.add_model(run, 'bc_lift_tiny', folder=tmp_path)
    monkeypatch.setattr(models, 'models_dir', lambda: tmp_path)
    assert models.resolve_policy(run) == run
    with pytest.raises(ValueError, match='bc_lift_tiny'):
        models.resolve_policy('no_such_model')
    assert main(['models']) == 0
    out = capsys.readouterr().out
    assert 'bc_lift_tiny' in out and 'lift' in out
    assert main(['models', '--json']) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r['name'] for r in rows] == ['bc_lift_tiny'] and rows[0]['size_mb'] > 0
    assert main(['models', 'add']) == 2  # missing RUN and NAME: a usage error, not a crash


def test_add_writes_into_the_folder_given_readable_by_all(run, tmp_path, capsys):
    target = tmp_path / 'checkout_models'
    assert main(['models', 'add', str(run), 'bc_lift_cli', '--dir', str(target)]) == 0
    assert str(target / 'bc_lift_cli') in capsys.readouterr().out
    assert (target / 'bc_lift_cli' / 'model.json').is_file()
    assert (target / 'bc_lift_cli').stat().st_mode & 0o777 == 0o755


def test_every_shipped_model_loads_and_its_card_is_complete():
    shipped = models.shipped_models()
    for name, model in shipped.items():
        assert model.size_bytes <= models.MAX_MODEL_BYTES, name
        if not model.is_policy:  # an affordance model: test_affordance_keypoint_model.py
            continue
        card = model.card
        assert card['name'] == name and card['retrain'], name
        trainer = 'vrl train-residual' if card['kind'] == 'residual' else 'vrl train-bc'
        assert card['retrain'][-1].startswith(trainer), name
        assert card['evaluation']['episodes'] >= 1, name
        runner = open_policy(model.path, PolicyOptions(device='cpu', num_inference_steps=2))
        assert isinstance(runner, ResidualPolicyRunner) == (card['kind'] == 'residual'), name
        assert runner.task == card['task'] and runner.config.obs_mode == card['obs_mode']
