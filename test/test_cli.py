"""The ``vrl`` CLI contract that reviewers script against."""

from dataclasses import fields, MISSING
import json
from pathlib import Path
import re
import shlex
import subprocess
import sys

import pytest
from visual_rl_stack.cli.main import build_parser, command_module, COMMANDS, main
from visual_rl_stack.cli.settings_args import flag_name, given_overrides, settings_from_args
from visual_rl_stack.residual_policy.diffusion_bc.model.config import (DATA_FIELDS,
                                                                       DiffusionPolicyConfig)
from visual_rl_stack.residual_policy.diffusion_bc.training.config import (
    BCTrainSettings, DistillSettings)
from visual_rl_stack.residual_policy.resip.config import (PPOConfig, RESIDUAL_DATA_FIELDS,
                                                          ResidualConfig, ResidualTrainSettings)
from visual_rl_stack.vlm_affordance.keypoint_model.config import KeypointTrainSettings
from visual_rl_stack.world_model.settings import HorizonTrainSettings, WorldModelTrainSettings


def test_eval_writes_the_documented_json(tmp_path):
    out = tmp_path / 'eval.json'
    assert main(['eval', '--task', 'reach', '--policy', 'expert', '--episodes', '2',
                 '--seed-start', '1000', '--json', str(out), '--no-progress']) == 0
    result = json.loads(out.read_text())
    for key in ('task', 'policy', 'episodes', 'successes', 'success_rate', 'per_episode',
                'mean_episode_length'):
        assert key in result
    assert result['task'] == 'reach' and result['episodes'] == 2
    assert [e['seed'] for e in result['per_episode']] == [1000, 1001]
    assert result['successes'] == sum(e['success'] for e in result['per_episode'])
    assert result['success_rate'] == result['successes'] / 2


def test_unknown_task_and_policy_are_clear_errors(capsys):
    assert main(['eval', '--task', 'juggle', '--episodes', '1', '--no-progress']) == 2
    assert 'juggle' in capsys.readouterr().err
    assert main(['eval', '--task', 'reach', '--policy', 'magic', '--episodes', '1']) == 2
    assert "policy 'magic' is neither a shipped model" in capsys.readouterr().err
    assert main(['eval', '--task', 'reach', '--torch-threads', '0', '--episodes', '1']) == 2
    assert '--torch-threads must be >= 1' in capsys.readouterr().err
    assert main(['eval', '--task', 'reach', '--finetune-demos', 'd', '--episodes', '1']) == 2
    assert 'add --finetune-out' in capsys.readouterr().err


#: Every documented command, by its exact name.
DOCUMENTED = ('eval', 'collect', 'record', 'bringup', 'call', 'bench', 'demo', 'train-bc',
              'train-residual', 'distill', 'models', 'relabel', 'train-affordance', 'affordance',
              'curves', 'reward-quality', 'stages', 'keyframes', 'train-world-model',
              'train-horizon', 'play', 'replay-eval')


def test_help_lists_every_command_by_its_exact_name():
    text = subprocess.run([sys.executable, '-m', 'visual_rl_stack.cli', '--help'],
                          capture_output=True, text=True, check=True).stdout
    listed = re.findall(r'^    ([a-z-]+)(?:  |$)', text, flags=re.MULTILINE)
    assert sorted(listed) == sorted(DOCUMENTED) == sorted(COMMANDS)


@pytest.mark.parametrize('command', DOCUMENTED)
def test_every_command_builds_its_parser_from_one_naming_scheme(command):
    module = command_module(command)
    assert callable(module.add_arguments) and callable(module.main)
    parser = build_parser(command)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([command, '--help'])
    assert exit_info.value.code == 0


#: Training command -> (its settings dataclass, the least it needs besides --out).
GENERATED = {
    'train-residual': (ResidualTrainSettings, {'task': 'lift', 'base': 'b'}),
    'train-bc': (BCTrainSettings, {'task': 'lift', 'data': 'bags'}),
    'distill': (DistillSettings, {'teacher': 'bc_state_lift'}),
    'train-affordance': (KeypointTrainSettings, {}),
    'train-world-model': (WorldModelTrainSettings, {'task': 'lift', 'data': 'bags'}),
    'train-horizon': (HorizonTrainSettings, {'task': 'lift', 'world_model': 'wm'}),
}


@pytest.mark.parametrize('command', sorted(GENERATED))
def test_training_flags_are_the_settings_fields_with_their_defaults(command):
    settings_cls, required = GENERATED[command]
    argv = [command, '--out', 'o'] + [word for name, value in required.items()
                                      for word in (flag_name(name), value)]
    parser = build_parser(command)
    args = parser.parse_args(argv)
    sub_parser = parser._subparsers._group_actions[0].choices[command]
    sub_help = sub_parser.format_help()
    helps = {a.dest: a.help for a in sub_parser._actions}
    for spec in fields(settings_cls):
        assert flag_name(spec.name) in sub_help, spec.name
        if spec.default is not MISSING:
            assert getattr(args, spec.name) == spec.default, spec.name
            assert '(default' in helps[spec.name], spec.name  # --help shows it
    assert settings_from_args(settings_cls, args) == settings_cls(**required)


#: Training command -> (the least it needs, [(model config, fields the data decides)]).
CONFIG_FLAGS = {
    'train-bc': (['--task', 'lift', '--data', 'd'], [(DiffusionPolicyConfig, DATA_FIELDS)]),
    'train-residual': (['--task', 'lift', '--base', 'b'],
                       [(ResidualConfig, RESIDUAL_DATA_FIELDS), (PPOConfig, ())]),
}


def _typed(value) -> list:
    """Return ``value`` as the words a user types for it."""
    if isinstance(value, tuple):
        return [str(v) for v in value]
    return ['none' if value is None else str(value)]


@pytest.mark.parametrize('command', sorted(CONFIG_FLAGS))
def test_model_config_flags_override_only_what_is_given(command):
    required, configs = CONFIG_FLAGS[command]
    parser = build_parser(command)
    bare = parser.parse_args([command, '--out', 'o', *required])
    sub_help = parser._subparsers._group_actions[0].choices[command].format_help()
    for config_cls, data_fields in configs:
        assert given_overrides(config_cls, bare, data_fields) == {}
        for spec in fields(config_cls):
            if spec.name in data_fields:
                continue
            default = spec.default
            assert flag_name(spec.name) in sub_help, spec.name
            if isinstance(default, bool):
                words = [flag_name(spec.name) if default else '--no-' + flag_name(spec.name)[2:]]
            else:
                words = [flag_name(spec.name), *_typed(default)]
            args = parser.parse_args([command, '--out', 'o', *required, *words])
            given = given_overrides(config_cls, args, data_fields)
            assert given == {spec.name: default}, spec.name


def test_older_override_spellings_still_parse_and_flags_win():
    args = build_parser('train-residual').parse_args(
        ['train-residual', '--task', 'lift', '--base', 'b', '--out', 'o',
         '--ppo', 'target_kl=0.02', '--residual', 'init_log_std=-2', '--target-kl', '0.03'])
    assert dict(args.ppo_overrides) == {'target_kl': 0.02}
    assert dict(args.residual_overrides) == {'init_log_std': -2}
    assert given_overrides(PPOConfig, args) == {'target_kl': 0.03}
    args = build_parser('train-bc').parse_args(
        ['train-bc', '--task', 'lift', '--data', 'd', '--out', 'o', '--set', 'horizon=32',
         '--action-frame', 'peg_position', 'hole_position', '--state-hidden-dims'])
    assert dict(args.overrides) == {'horizon': 32}
    assert given_overrides(DiffusionPolicyConfig, args, DATA_FIELDS) == {
        'action_frame': ('peg_position', 'hole_position'), 'state_hidden_dims': ()}


@pytest.mark.parametrize('card', sorted(Path(__file__).parent.parent.glob('models/*/model.json')),
                         ids=lambda path: path.parent.name)
def test_every_shipped_model_command_parses(card):
    data = json.loads(card.read_text())
    evaluation = data['evaluation']
    measured = ([row['command'] for row in evaluation['per_task'].values()]  # an affordance model
                if 'per_task' in evaluation else [evaluation['command']])
    commands = [*data.get('retrain', []), *measured]
    for command in commands:
        words = shlex.split(command)
        assert words[0] == 'vrl', command
        build_parser(words[1]).parse_args(words[1:])


def test_old_flag_spellings_still_parse():
    parser = build_parser('train-residual')
    args = parser.parse_args(['train-residual', '--task', 'lift', '--base', 'b', '--out', 'o',
                              '--base-steps', '7', '--total-steps', '5'])
    assert args.base_inference_steps == 7 and args.total_steps == 5
    args = build_parser('train-bc').parse_args(['train-bc', '--task', 'lift', '--data', 'd',
                                                '--out', 'o', '--obs', 'image',
                                                '--views', 'front', 'wrist'])
    settings = settings_from_args(BCTrainSettings, args)
    assert settings.obs_mode == 'image' and settings.views == ('front', 'wrist')
