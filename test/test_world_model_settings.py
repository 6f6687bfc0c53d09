"""The settings of ``vrl train-world-model`` and ``vrl train-horizon``: flags, checks, guards."""

from dataclasses import asdict
import json
import subprocess
import sys

import pytest
import torch
from visual_rl_stack.cli.main import build_parser, main
from visual_rl_stack.cli.settings_args import settings_from_args
from visual_rl_stack.core.run_layout import RUN_CONFIG, TRAINING_STATE
from visual_rl_stack.data.collect import collect
from visual_rl_stack.world_model.dynamics.training import RSSMTrainSettings
from visual_rl_stack.world_model.mae.model import MAEConfig
from visual_rl_stack.world_model.mae.training import MAETrainSettings
from visual_rl_stack.world_model.run_folder import load_world_model
from visual_rl_stack.world_model.settings import HorizonTrainSettings, WorldModelTrainSettings

torch.set_num_threads(1)
#: The flags the commands had before they were generated: none may go missing or be renamed.
FLAGS = {
    'train-world-model': {
        '--task', '--data', '--out', '--views', '--image-size', '--width', '--encoder-layers',
        '--decoder-layers', '--patch-ratio', '--steps', '--batch', '--clip', '--lr', '--seed',
        '--log-every', '--time-limit-min', '--mae', '--dynamics-steps',
        '--dynamics-time-limit-min', '--reward', '--no-progress'},
    'train-horizon': {
        '--task', '--world-model', '--out', '--reward', '--env-steps', '--num-envs',
        '--collect-steps', '--updates', '--batch', '--length', '--bc-steps', '--bc-weight',
        '--entropy', '--horizon', '--imagine-starts', '--eval-every', '--eval-episodes',
        '--eval-seed-start', '--seed', '--time-limit-min', '--threads', '--resume',
        '--no-progress'},
}


@pytest.mark.parametrize('command', sorted(FLAGS))
def test_the_generated_flags_are_the_earlier_ones(command):
    parser = build_parser(command)
    sub = parser._subparsers._group_actions[0].choices[command]
    assert {o for a in sub._actions for o in a.option_strings} - {'-h', '--help'} == FLAGS[command]


def test_given_flags_reach_the_settings():
    args = build_parser('train-world-model').parse_args([
        'train-world-model', '--task', 'stack', '--data', 'bags', '--out', 'o', '--views',
        'front', 'wrist', '--mae', 'runs/wm/mae', '--time-limit-min', '30', '--reward', 'sparse'])
    assert settings_from_args(WorldModelTrainSettings, args) == WorldModelTrainSettings(
        'stack', 'bags', views=('front', 'wrist'), mae='runs/wm/mae', time_limit_min=30.0,
        reward='sparse')
    args = build_parser('train-horizon').parse_args([
        'train-horizon', '--task', 'stack', '--world-model', 'wm', '--out', 'o', '--horizon',
        '7', '--bc-weight', '0.5', '--resume'])
    assert args.resume and settings_from_args(HorizonTrainSettings, args) == HorizonTrainSettings(
        'stack', 'wm', horizon=7, bc_weight=0.5)


def test_world_model_defaults_are_the_stages_own():
    settings, config = WorldModelTrainSettings('lift', 'bags'), MAEConfig()
    mae, rssm = MAETrainSettings('lift', 'bags'), RSSMTrainSettings('lift', 'bags')
    assert ((settings.views, settings.image_size, settings.width, settings.encoder_layers,
             settings.decoder_layers, settings.patch_ratio)
            == (config.views, config.image_size, config.width, config.encoder_layers,
                config.decoder_layers, config.patch_ratio))
    assert ((settings.steps, settings.batch, settings.lr, settings.log_every, settings.clip)
            == (mae.steps, mae.batch, mae.lr, mae.log_every, mae.clip))
    assert (settings.dynamics_steps, settings.reward) == (rssm.steps, rssm.reward)


def test_the_commands_parse_without_torch():
    code = ('import sys; from visual_rl_stack.cli.main import build_parser\n'
            'for c in ("train-world-model", "train-horizon"): build_parser(c)\n'
            'assert "torch" not in sys.modules, "torch imported"')
    subprocess.run([sys.executable, '-c', code], check=True)


@pytest.mark.parametrize('settings_cls, values, message', [
    (WorldModelTrainSettings, {'steps': 0}, 'steps must be >= 1, got 0'),
    (WorldModelTrainSettings, {'patch_ratio': 1.0}, r'patch_ratio must be in \[0, 1\)'),
    (WorldModelTrainSettings, {'views': ()}, 'views must name at least one camera view'),
    (WorldModelTrainSettings, {'lr': 0.0, 'dynamics_time_limit_min': -1.0},
     'lr must be > 0, got 0.0; dynamics_time_limit_min must be > 0, got -1.0'),
    (WorldModelTrainSettings, {'reward': 'kagi'}, 'reward must be one of'),
    (HorizonTrainSettings, {'horizon': 0}, 'horizon must be >= 1, got 0'),
    (HorizonTrainSettings, {'batch': 0, 'entropy': -1.0},
     'batch must be >= 1, got 0; entropy must be >= 0, got -1.0'),
    (HorizonTrainSettings, {'time_limit_min': 0.0}, 'time_limit_min must be > 0'),
    (HorizonTrainSettings, {'reward': 'shaped'}, 'reward must be one of'),
])
def test_invalid_settings_are_refused_naming_each_problem(settings_cls, values, message):
    required = (('lift', 'bags') if settings_cls is WorldModelTrainSettings else ('lift', 'wm'))
    with pytest.raises(ValueError, match=message):
        settings_cls(*required, **values)


def test_the_command_reports_invalid_settings(tmp_path, capsys):
    assert main(['train-horizon', '--task', 'lift', '--world-model', 'wm', '--out',
                 str(tmp_path / 'agent'), '--batch', '0']) == 2
    assert 'invalid train-horizon settings: batch must be >= 1' in capsys.readouterr().err
    assert not (tmp_path / 'agent').exists()


def _started_horizon_run(out, settings: HorizonTrainSettings) -> None:
    """Leave what a started train-horizon run holds for the guards: its settings and state."""
    out.mkdir()
    (out / RUN_CONFIG).write_text(json.dumps({'settings': asdict(settings)}))
    (out / TRAINING_STATE).write_bytes(b'')


def test_train_horizon_refuses_to_overwrite_a_run_or_resume_it_otherwise(tmp_path, capsys):
    out = tmp_path / 'agent'
    _started_horizon_run(out, HorizonTrainSettings('lift', 'wm', env_steps=100))
    argv = ['train-horizon', '--task', 'lift', '--world-model', 'wm', '--out', str(out),
            '--no-progress']
    assert main(argv) == 2
    assert ('already holds a training run; pass --resume to continue it or choose another '
            '--out') in capsys.readouterr().err
    assert main(argv + ['--resume', '--batch', '8', '--seed', '1']) == 2
    error = capsys.readouterr().err
    assert 'was started with other settings (batch, seed)' in error
    assert 'only --env-steps and --time-limit-min and --threads may change' in error


def test_train_horizon_resume_needs_a_training_state(tmp_path, capsys):
    assert main(['train-horizon', '--task', 'lift', '--world-model', 'wm', '--out',
                 str(tmp_path), '--resume']) == 2
    assert 'cannot resume' in capsys.readouterr().err


def test_train_world_model_trains_reuses_its_mae_and_refuses_to_overwrite(tmp_path, capsys):
    bags = collect('lift', 2, tmp_path / 'bags', views=('front', 'wrist'), width=32, height=32)
    tiny = ['--task', 'lift', '--data', str(bags), '--views', 'front', 'wrist', '--image-size',
            '32', '--width', '32', '--encoder-layers', '1', '--decoder-layers', '1', '--steps',
            '2', '--batch', '2', '--log-every', '1', '--dynamics-steps', '2', '--no-progress']
    assert main(['train-world-model', '--out', str(tmp_path / 'wm'), *tiny]) == 0
    assert 'MAE: 2 steps' in capsys.readouterr().out
    # Both stages log rows, TensorBoard events and a summary that names the machine.
    for metrics, summary, steps in (('metrics.jsonl', 'summary.json', [1, 2]),
                                    ('dynamics_metrics.jsonl', 'dynamics_summary.json', [2])):
        assert [json.loads(r)['step'] for r in (tmp_path / 'wm' / metrics).open()] == steps
        assert 'machine' in json.loads((tmp_path / 'wm' / summary).read_text())
    assert len(list((tmp_path / 'wm' / 'tensorboard').glob('events.out.tfevents.*'))) == 2
    reuse = ['train-world-model', '--out', str(tmp_path / 'wm2'), '--mae', str(tmp_path / 'wm')]
    assert main([*reuse, *tiny]) == 0
    assert 'reusing the MAE of' in capsys.readouterr().out
    assert load_world_model(tmp_path / 'wm2').embedder.views == ('front', 'wrist')
    assert main([*reuse, *tiny]) == 2
    assert ('already holds a training run; choose another --out (--mae RUN reuses its MAE)'
            in capsys.readouterr().err)
    reuse[2], reuse[4] = str(tmp_path / 'wm3'), str(bags)
    assert main([*reuse, *tiny]) == 2
    assert 'has no mae/ checkpoint' in capsys.readouterr().err
