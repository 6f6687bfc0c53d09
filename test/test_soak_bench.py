"""The soak benchmark's arithmetic: memory growth after the settling time, missed steps."""

import pytest
from visual_rl_stack.bench.soak import memory_growth, missed_steps


def test_growth_is_measured_from_the_first_sample_after_settling():
    samples = [(0.0, 100.0), (2.0, 180.0), (5.0, 200.0), (30.0, 205.0), (60.0, 210.0)]
    assert memory_growth(samples) == {'settled_mib': 200.0, 'end_mib': 210.0,
                                      'growth': pytest.approx(0.05)}


def test_a_run_shorter_than_the_settling_time_reports_no_growth():
    assert memory_growth([(0.0, 100.0), (1.0, 150.0)]) == {
        'settled_mib': None, 'end_mib': 150.0, 'growth': None}
    assert memory_growth([]) == {'settled_mib': None, 'end_mib': None, 'growth': None}


def test_missed_steps_are_steps_without_a_command_never_negative():
    assert missed_steps(600, 590) == 10
    assert missed_steps(600, 601) == 0
