"""The ``vrl`` CLI contract that reviewers script against."""

import json
import subprocess
import sys

from visual_rl_stack.cli import main


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


def test_help_lists_every_command():
    text = subprocess.run([sys.executable, '-m', 'visual_rl_stack.cli', '--help'],
                          capture_output=True, text=True, check=True).stdout
    for command in ('eval', 'collect', 'record', 'bringup', 'bench', 'demo', 'train-bc'):
        assert command in text
