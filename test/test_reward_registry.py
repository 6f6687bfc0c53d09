"""The one reward registry: every reward by name, clear errors, old names, every consumer."""

from dataclasses import asdict, replace
import importlib
import inspect
import json
from types import SimpleNamespace

import numpy as np
import pytest
from visual_rl_stack.cli.main import build_parser
from visual_rl_stack.core import rewards
from visual_rl_stack.core.rewards import (canonical_reward, check_reward, LEVEL, make_reward,
                                          RECORDED, register_reward, REWARD_ALIASES,
                                          reward_names, REWARDS)
from visual_rl_stack.residual_policy.resip.config import ResidualTrainSettings
from visual_rl_stack.residual_policy.resip.residual_run import ResidualRun
from visual_rl_stack.sim.rewards import SubtaskReward, success_reward
from visual_rl_stack.world_model.dynamics.sequences import relabelled_rewards

#: Command -> (the least it needs besides --reward, the trait its rewards must offer).
CONSUMERS = {
    'train-residual': (['--task', 'lift', '--base', 'b', '--out', 'o'], None),
    'reward-quality': (['--task', 'lift', '--json', 'q.json'], LEVEL),
    'train-horizon': (['--task', 'lift', '--world-model', 'w', '--out', 'o'], RECORDED),
    'train-world-model': (['--task', 'lift', '--data', 'd', '--out', 'o'], RECORDED),
}


def _factory(name: str):
    module_name, function = REWARDS[name].entry_point.split(':')
    return getattr(importlib.import_module(module_name), function)


def _reward_flag(command: str):
    parser = build_parser(command)
    sub = parser._subparsers._group_actions[0].choices[command]
    return parser, next(a for a in sub._actions if '--reward' in a.option_strings)


def test_the_registry_lists_every_reward_once_by_its_new_name():
    assert reward_names() == ['kagi', 'planner_stages', 'shaped', 'sparse', 'subtasks',
                              'upright']
    assert reward_names(LEVEL) == ['kagi', 'planner_stages']
    assert reward_names(RECORDED) == ['planner_stages', 'sparse']
    assert not set(REWARD_ALIASES) & set(REWARDS)


@pytest.mark.parametrize('name', sorted(REWARDS))
def test_every_factory_loads_and_takes_the_options_it_declares(name):
    spec = REWARDS[name]
    assert spec.description and '\n' not in spec.description
    parameters = inspect.signature(_factory(name)).parameters
    assert next(iter(parameters)) == 'task'
    named = [p for p in parameters if p != 'task'
             and parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]
    takes_more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert set(named) <= set(spec.options) if takes_more else named == list(spec.options)


def test_the_simulator_rewards_need_no_learner():
    assert make_reward('sparse') is success_reward
    assert isinstance(make_reward('subtasks', 'stack'), SubtaskReward)
    assert all(REWARDS[n].entry_point.startswith('visual_rl_stack.sim.rewards:')
               for n in ('sparse', 'subtasks', 'shaped', 'upright'))


def test_unknown_names_tasks_and_options_are_clear_errors():
    with pytest.raises(ValueError, match="unknown reward 'dense-ish'; known: kagi, "):
        make_reward('dense-ish')
    with pytest.raises(ValueError, match="unknown task 'kitchen'"):
        make_reward('sparse', 'kitchen')
    with pytest.raises(ValueError, match='the sparse reward takes no options; not gamma'):
        make_reward('sparse', 'lift', {'gamma': 0.9})
    with pytest.raises(ValueError, match='the kagi reward takes backend, .*; not colour'):
        check_reward('kagi', 'lift', {'backend': 'scripted', 'colour': 'red'})


def test_a_reward_the_task_cannot_measure_is_refused():
    with pytest.raises(ValueError, match=r'the shaped reward needs a task with a goal distance'
                       r' \(.*peg_insert.*\), not .lift.'):
        make_reward('shaped', 'lift')
    with pytest.raises(ValueError, match=r'needs a task with a tilt \(peg_insert\)'):
        check_reward('upright', 'stack')
    assert check_reward('upright', 'peg_insert') == 'upright'


@pytest.mark.parametrize('old, new', sorted(REWARD_ALIASES.items()))
def test_old_names_map_to_the_new_ones_with_a_warning(old, new):
    assert (old, new) in {('stages', 'subtasks'), ('staged', 'planner_stages')}
    with pytest.warns(FutureWarning, match=f"reward '{old}' is now called '{new}'"):
        assert canonical_reward(old) == new
    with pytest.warns(FutureWarning):
        assert check_reward(old) == new
    with pytest.warns(FutureWarning):  # a run folder's settings read the old name as the new
        assert ResidualTrainSettings(task='stack', base='b', reward=old).reward == new


def test_an_old_name_still_opens_the_reward_and_relabels_demonstrations():
    with pytest.warns(FutureWarning):
        assert isinstance(make_reward('stages'), SubtaskReward)
    with pytest.warns(FutureWarning):
        paid = relabelled_rewards(np.array([False, True]), np.array([0.0, 0.5]), 'staged',
                                  gamma=1.0)
    assert list(paid) == [0.25, 1.0]


@pytest.mark.parametrize('command', sorted(CONSUMERS))
def test_every_consumer_offers_the_registry_and_its_descriptions(command):
    required, trait = CONSUMERS[command]
    parser, flag = _reward_flag(command)
    assert list(flag.choices) == reward_names(trait)
    for name in reward_names(trait):
        assert f'{name}: {REWARDS[name].description}' in flag.help
    with pytest.warns(FutureWarning):
        old = parser.parse_args([command, *required, '--reward', 'staged']).reward
    assert old == 'planner_stages'
    with pytest.raises(SystemExit):
        parser.parse_args([command, *required, '--reward', 'dense-ish'])


def test_a_registered_reward_is_offered_by_every_command(monkeypatch):
    monkeypatch.setattr(rewards, 'REWARDS', dict(REWARDS))
    register_reward('toy', 'visual_rl_stack.sim.rewards:sparse_reward', 'a toy reward',
                    traits=(LEVEL, RECORDED))
    for command in CONSUMERS:
        assert 'toy' in _reward_flag(command)[1].choices
    assert make_reward('toy') is success_reward
    with pytest.raises(ValueError, match='module:function'):
        register_reward('bad', 'no_colon', 'broken')


def test_a_run_started_under_an_old_name_resumes_under_the_new_one(tmp_path):
    settings = ResidualTrainSettings(task='stack', base='b', reward='subtasks')
    saved = {**asdict(settings), 'reward': 'stages'}
    (tmp_path / 'config.json').write_text(json.dumps({'settings': saved}))
    run = SimpleNamespace(out_dir=tmp_path, settings=settings, RESUMABLE=ResidualRun.RESUMABLE,
                          same_learner_configs=lambda config: True)
    with pytest.warns(FutureWarning):
        ResidualRun._check_same_settings(run)
    run.settings = replace(settings, reward='sparse')
    with pytest.raises(ValueError, match=r'other settings \(reward\)'), pytest.warns(
            FutureWarning):
        ResidualRun._check_same_settings(run)
