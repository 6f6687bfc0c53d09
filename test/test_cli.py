"""The ``vrl`` CLI contract that reviewers script against."""

from dataclasses import fields, MISSING
import json
import re
import subprocess
import sys

import pytest
from visual_rl_stack.cli.main import build_parser, command_module, COMMANDS, main
from visual_rl_stack.cli.settings_args import settings_from_args
from visual_rl_stack.residual_policy.resip.config import ResidualTrainSettings


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


#: Every documented command, by its exact name.
DOCUMENTED = ('eval', 'collect', 'record', 'bringup', 'bench', 'demo', 'train-bc',
              'train-residual', 'distill', 'models')


def test_help_lists_every_command_by_its_exact_name():
    text = subprocess.run([sys.executable, '-m', 'visual_rl_stack.cli', '--help'],
                          capture_output=True, text=True, check=True).stdout
    listed = re.search(r'\{([a-z,-]+)\}', text).group(1).split(',')
    assert sorted(listed) == sorted(DOCUMENTED) == sorted(COMMANDS)


@pytest.mark.parametrize('command', DOCUMENTED)
def test_every_command_builds_its_parser_from_one_naming_scheme(command):
    module = command_module(command)
    assert callable(module.add_arguments) and callable(module.main)
    parser = build_parser(command)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([command, '--help'])
    assert exit_info.value.code == 0


def test_train_residual_flags_are_the_settings_fields_with_their_defaults():
    parser = build_parser('train-residual')
    args = parser.parse_args(['train-residual', '--task', 'lift', '--base', 'b', '--out', 'o'])
    for spec in fields(ResidualTrainSettings):
        if spec.default is not MISSING:
            assert getattr(args, spec.name) == spec.default, spec.name
    settings = settings_from_args(ResidualTrainSettings, args)
    assert settings == ResidualTrainSettings(task='lift', base='b')


def test_old_flag_spellings_still_parse():
    parser = build_parser('train-residual')
    args = parser.parse_args(['train-residual', '--task', 'lift', '--base', 'b', '--out', 'o',
                              '--base-steps', '7', '--total-steps', '5'])
    assert args.base_inference_steps == 7 and args.total_steps == 5
