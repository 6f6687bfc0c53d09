"""Grouped validation curves: the shared budget, group means, steps to reach, the CLI's PNG."""

import json
from pathlib import Path

import numpy as np
import pytest
from visual_rl_stack.cli.main import main as vrl
from visual_rl_stack.evaluation.learning_curves import (compare, group_curves, Level,
                                                        load_curve, steps_to_reach)


def write_run(folder: Path, curve: list[tuple[int, float]]) -> Path:
    """Write a run folder whose metrics hold these validations between training rows."""
    folder.mkdir(parents=True)
    rows = []
    for steps, success in curve:
        rows.append({'env_steps': steps, 'iteration': steps // 100, 'rollout': {}})
        rows.append({'env_steps': steps, 'val_success': success})
    (folder / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return folder


def test_groups_are_cut_to_the_shared_budget_and_averaged(tmp_path):
    fast = [write_run(tmp_path / f'fast{i}', [(0, 0.2), (100, 0.5 + i / 10), (200, 0.8),
                                              (300, 0.9)]) for i in range(2)]
    slow = [write_run(tmp_path / 'slow0', [(0, 0.2), (100, 0.3), (200, 0.4)])]
    groups = group_curves({'fast': [load_curve(r) for r in fast],
                           'slow': [load_curve(r) for r in slow]})
    assert groups['fast'].steps.tolist() == [0, 100, 200]      # the slow run stopped at 200
    assert groups['fast'].mean == pytest.approx([0.2, 0.55, 0.8])
    assert groups['slow'].final == pytest.approx(0.4)
    assert steps_to_reach(groups['fast'], 0.4) == 100
    assert steps_to_reach(groups['slow'], 0.9) is None
    report = compare(groups, 'slow')
    assert report['budget_steps'] == 200
    assert report['groups']['fast']['fraction_of_budget'] == pytest.approx(0.5)
    assert report['groups']['slow']['steps_to_reference_final'] == 200
    assert np.isclose(compare(groups, 'fast')['groups']['slow']['final_success'], 0.4)


def test_an_explicit_budget_and_bad_input(tmp_path):
    run = write_run(tmp_path / 'a', [(0, 0.1), (100, 0.2), (200, 0.3)])
    assert group_curves({'a': [load_curve(run)]}, budget=150)['a'].steps.tolist() == [0, 100]
    with pytest.raises(FileNotFoundError, match='training run folder'):
        load_curve(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'metrics.jsonl').write_text('{"env_steps": 0}\n')
    with pytest.raises(ValueError, match='no validation rows'):
        load_curve(tmp_path / 'empty')
    other = write_run(tmp_path / 'b', [(50, 0.1), (150, 0.2), (250, 0.2)])
    with pytest.raises(ValueError, match='share no validated step'):
        group_curves({'mixed': [load_curve(run), load_curve(other)]}, budget=40)
    with pytest.raises(ValueError, match='reference group'):
        compare(group_curves({'a': [load_curve(run)]}), 'nope')


def test_vrl_curves_writes_the_png_and_json(tmp_path, capsys):
    sparse = write_run(tmp_path / 's', [(0, 0.3), (100, 0.3), (200, 0.4)])
    dense = write_run(tmp_path / 'd', [(0, 0.3), (100, 0.5), (200, 0.7)])
    out, report = tmp_path / 'plots' / 'c.png', tmp_path / 'c.json'
    assert vrl(['curves', '--group', 'sparse', str(sparse), '--group', 'kagi', str(dense),
                '--out', str(out), '--json', str(report)]) == 0
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    data = json.loads(report.read_text())
    assert data['reference'] == 'sparse'
    assert data['groups']['kagi']['steps_to_reference_final'] == 100
    assert 'kagi: 30% -> 70% over 1 runs; reaches the reference final at 100 steps' in \
        capsys.readouterr().out
    assert vrl(['curves', '--group', 'x', '--out', str(out)]) == 2
    assert vrl(['curves', '--group', 'x', str(sparse), '--group', 'x', str(dense),
                '--out', str(out)]) == 2


def test_levels_reached_elsewhere(tmp_path, capsys):
    run = write_run(tmp_path / 'r', [(0, 0.5), (100, 0.7), (200, 0.85)])
    groups = group_curves({'off-policy': [load_curve(run)]})
    report = compare(groups, 'off-policy', [Level('PPO final', 0.8, 1000), Level('x', 0.9)])
    reach = report['groups']['off-policy']['levels']
    assert reach['PPO final'] == {'steps_to_reach': 200, 'fraction_of_level_steps': 0.2}
    assert reach['x'] == {'steps_to_reach': None, 'fraction_of_level_steps': None}
    assert report['levels'][0] == {'name': 'PPO final', 'success': 0.8, 'steps': 1000}
    assert 'levels' not in compare(groups, 'off-policy')
    with pytest.raises(ValueError, match='fraction'):
        Level('bad', 81.0)
    out = tmp_path / 'c.png'
    assert vrl(['curves', '--group', 'a', str(run), '--level', 'PPO final', '0.7', '500',
                '--out', str(out)]) == 0
    assert 'PPO final: reached at 100 steps (0.20 of its steps)' in capsys.readouterr().out
    assert vrl(['curves', '--group', 'a', str(run), '--level', 'PPO', 'most',
                '--out', str(out)]) == 2
    assert vrl(['curves', '--group', 'a', str(run), '--level', 'PPO', '0.5', '1', '2',
                '--out', str(out)]) == 2
