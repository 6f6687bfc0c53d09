"""Keyframes: a synthetic trajectory, bad input, and recorded expert bags through ``vrl``."""

import json
import subprocess
import sys

import numpy as np
import pytest
from visual_rl_stack.data.collect import collect
from visual_rl_stack.world_model.keyframes import (find_keyframes, GRIPPER, gripper_events,
                                                   KeyframeSettings, LAST, match_events, STOP)

HZ = 10.0


def synthetic():
    """Return joint positions and widths: move, stop, close, move, stop, open, move."""
    speed = np.zeros(30)
    speed[1:10] = 0.05
    speed[14:23] = 0.05
    speed[26:] = 0.05
    q = np.cumsum(np.stack([speed, -speed], axis=1), axis=0)
    width = np.full(30, 0.08)
    width[13:25] = 0.04
    return q, width


def test_stops_gripper_toggles_and_the_last_frame_are_the_keyframes():
    q, width = synthetic()
    found = find_keyframes(q, width, HZ)
    assert found.indices == (10, 13, 23, 25, 29)
    assert found.reasons == (STOP, GRIPPER, STOP, GRIPPER, LAST)
    assert found.horizons() == [(0, 10), (11, 13), (14, 23), (24, 25), (26, 29)]
    assert found.with_reason(GRIPPER) == [13, 25]


def test_a_long_stop_is_one_keyframe_and_slow_motion_is_none():
    q, width = synthetic()
    q[10:] = q[10]
    width[:] = 0.08
    assert find_keyframes(q, width, HZ).indices == (10, 29)
    assert find_keyframes(q * 0.0 + np.arange(30)[:, None] * 0.05, width, HZ).indices == (29,)


def test_bad_trajectories_are_refused():
    q, width = synthetic()
    with pytest.raises(ValueError, match='T x J'):
        find_keyframes(q[:5], width, HZ)
    q[4, 0] = np.nan
    with pytest.raises(ValueError, match='finite'):
        find_keyframes(q, width, HZ)
    with pytest.raises(ValueError, match='closed_fraction'):
        KeyframeSettings(closed_fraction=0.9, open_fraction=0.8)


def test_gripper_events_and_matching_within_a_window():
    assert gripper_events(np.array([0.75, 0.75, 0.0, 0.0, 1.0])) == [2, 4]
    assert match_events([3, 9], [2, 4], window=1) == (1, 2)


def test_vrl_keyframes_on_expert_bags_matches_their_gripper_commands(tmp_path):
    bags = collect('stack', 2, tmp_path / 'bags', seed_start=1000, views=('front', 'wrist'),
                   width=32, height=32)
    (bags / 'broken_seed9').mkdir()
    (bags / 'broken_seed9' / 'metadata.yaml').write_text('not a bag\n')
    index = json.loads((bags / 'index.json').read_text())
    index['episodes'].append(dict(index['episodes'][0], bag='broken_seed9'))
    (bags / 'index.json').write_text(json.dumps(index))
    out = tmp_path / 'keyframes'
    result = subprocess.run([sys.executable, '-m', 'visual_rl_stack.cli', 'keyframes', '--bags',
                             str(bags), '--out', str(out), '--no-progress'],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'skipped: broken_seed9' in result.stderr
    report = json.loads((out / 'keyframes.json').read_text())
    assert report['episodes'] == 2 and report['skipped'][0]['bag'] == 'broken_seed9'
    assert report['precision'] == 1.0 and report['recall'] == 1.0
    for episode in report['per_episode']:
        assert episode['gripper_events'] and episode['keyframes'][-1] == episode['frames'] - 1
        assert (out / f'{episode["bag"]}_keyframes.png').stat().st_size > 1000
