"""Replay-evaluation numbers on hand-computed cases."""

import math

import numpy as np
import pytest
from visual_rl_stack.evaluation.replay.metrics import (action_errors, correlation, first_step,
                                                       keypoint_displacements, summary)
from visual_rl_stack.evaluation.replay.report import keyframe_rows


def test_delta_action_errors_are_distance_turn_and_gripper_gap():
    recorded = np.array([[0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                         [0.0, 0.0, 0.0, 0.0, 0.0, math.pi / 2, 0.0],
                         [np.nan] * 7])
    predicted = np.array([[0.01, 0.03, 0.04, 0.0, 0.0, 0.0, 0.25],
                          [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                          [0.0] * 7])
    errors = action_errors(predicted, recorded, 'delta')
    assert errors['translation'][:2] == pytest.approx([0.05, 0.0])
    assert errors['rotation'][:2] == pytest.approx([0.0, math.pi / 2])
    assert errors['gripper'][:2] == pytest.approx([0.75, 0.0])
    assert all(np.isnan(errors[name][2]) for name in errors)  # a step without a command


def test_absolute_action_errors_compare_quaternions_up_to_sign():
    q = [0.0, 0.0, math.sin(0.25), math.cos(0.25)]  # 0.5 rad about z
    recorded = np.array([[0.5, 0.0, 0.2, 0.0, 0.0, 0.0, 1.0, 1.0]])
    predicted = np.array([[0.5, 0.0, 0.3, *q, 1.0]])
    errors = action_errors(predicted, recorded, 'absolute')
    assert errors['translation'][0] == pytest.approx(0.1)
    assert errors['rotation'][0] == pytest.approx(0.5)
    flipped = np.array([[0.5, 0.0, 0.2, 0.0, 0.0, 0.0, -1.0, 1.0]])
    assert action_errors(flipped, recorded, 'absolute')['rotation'][0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match='shapes'):
        action_errors(predicted[:, :7], recorded, 'absolute')
    with pytest.raises(ValueError, match='action mode'):
        action_errors(predicted, recorded, 'joint')


def test_keypoint_displacements_follow_each_keypoint_between_answers():
    a = np.zeros((2, 3))
    b = np.array([[0.03, 0.04, 0.0], [0.0, 0.0, 0.0]])
    moved = keypoint_displacements([a, b, b, np.zeros((3, 3))])
    assert moved.shape == (2, 2)
    assert moved[0] == pytest.approx([0.05, 0.0]) and moved[1] == pytest.approx([0.0, 0.0])
    assert keypoint_displacements([a]).shape == (0, 2)


def test_summary_correlation_and_first_step_ignore_what_is_missing():
    stats = summary([1.0, np.nan, 3.0])
    assert stats['mean'] == 2.0 and stats['n'] == 2 and stats['max'] == 3.0
    assert summary([])['mean'] is None
    assert correlation([0, 1, 2, np.nan], [0, 2, 4, 1]) == pytest.approx(1.0)
    assert correlation([1, 1, 1], [0, 1, 2]) is None
    assert first_step([False, False, True, True]) == 2 and first_step([False]) is None


def test_keyframe_rows_prefer_the_world_model_then_gripper_changes():
    gripper = np.array([1.0, 1.0, 0.0, 0.0, 1.0, np.nan])
    assert keyframe_rows([], gripper, 6) == [0, 2, 4, 5]
    assert keyframe_rows([3], gripper, 6) == [0, 3, 5]
    assert len(keyframe_rows(list(range(50)), np.ones(50), 50)) == 8
