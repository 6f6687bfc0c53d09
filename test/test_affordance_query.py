"""Tests of the robust query loop: validation, retries, raw-reply log, cache and failures."""

import json
import time
from typing import Union

import numpy as np
import pytest
from visual_rl_stack.vlm_affordance.affordance import (
    Affordance, Candidate, Keypoint, Prompt, ReplyError)
from visual_rl_stack.vlm_affordance.query import AffordanceQuery, validate

CANDIDATES = (Candidate(1, 'front', 40.0, 30.0, 1), Candidate(2, 'front', 80.0, 60.0, 2),
              Candidate(3, 'side', 10.0, 10.0, 1))
GOOD = json.dumps({'grasp': ['front', 42, 31], 'target': ['front', 100, 70]})


class ScriptedModel:
    """A stand-in for a model: answers with scripted replies in a tiny JSON format."""

    name = 'scripted'

    def __init__(self, *replies: Union[str, Exception], delay: float = 0.0):
        """Remember the replies, one per attempt (the last one repeats)."""
        self.replies = replies
        self.delay = delay
        self.asked: list[int] = []

    def ask(self, prompt: Prompt, attempt: int) -> str:
        """Return (or raise) the scripted reply of this attempt."""
        self.asked.append(attempt)
        time.sleep(self.delay)
        reply = self.replies[min(attempt, len(self.replies) - 1)]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def parse(self, reply: str, prompt: Prompt) -> Affordance:
        """Parse ``{"name": [view, u, v] or candidate number}``."""
        try:
            data = json.loads(reply)
        except json.JSONDecodeError as error:
            raise ReplyError(f'not JSON: {error}') from None
        keypoints = {}
        for name, value in data.items():
            if isinstance(value, int):
                keypoints[name] = Keypoint(name, 'front', 0.0, 0.0, candidate=value)
            else:
                keypoints[name] = Keypoint(name, *value)
        return Affordance(keypoints, self.name)


def prompt(instruction: str = 'pick up the red cube', candidates=CANDIDATES) -> Prompt:
    """Return a two-view prompt with a few candidates."""
    images = {'front': np.zeros((100, 120, 3), np.uint8), 'side': np.zeros((50, 50, 3), np.uint8)}
    return Prompt(instruction, images, candidates)


def test_retry_until_valid_keeps_and_logs_every_reply(tmp_path):
    model = ScriptedModel('not json', '{"grasp": ["front", 500, 10], "target": ["front", 1, 1]}',
                          GOOD, delay=0.01)
    log = tmp_path / 'logs' / 'replies.jsonl'
    result = AffordanceQuery(model, max_attempts=3, log_path=log)(prompt(), episode_id='ep0')
    assert result.ok and result.diagnostic == 'ok' and not result.cached
    assert model.asked == [0, 1, 2]
    assert result.replies == model.replies
    assert result.attempts[0].error.startswith('invalid reply: not JSON')
    assert 'outside the 120x100 image' in result.attempts[1].error
    assert result.attempts[2].error == ''
    assert result.latency_s >= sum(a.latency_s for a in result.attempts) >= 0.03
    grasp = result.affordance.keypoints['grasp']
    assert (grasp.u, grasp.v, grasp.candidate) == (40.0, 30.0, 1)
    assert result.affordance.keypoints['target'] == Keypoint('target', 'front', 100.0, 70.0)
    assert result.affordance.raw_reply == GOOD
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r['reply'] for r in lines] == list(model.replies)
    assert [r['attempt'] for r in lines] == [0, 1, 2]
    assert lines[0]['episode_id'] == 'ep0' and lines[0]['backend'] == 'scripted'


def test_results_are_cached_per_episode_and_instruction():
    model = ScriptedModel(GOOD)
    query = AffordanceQuery(model)
    first = query(prompt(), episode_id=7)
    again = query(prompt(), episode_id=7)
    assert again.cached and again.affordance == first.affordance and model.asked == [0]
    query(prompt(), episode_id=8)
    query(prompt('push the blue block'), episode_id=7)
    query(prompt())
    query(prompt())
    assert model.asked == [0, 0, 0, 0, 0]


def test_the_cache_keeps_the_most_recently_used_episodes():
    model = ScriptedModel(GOOD)
    query = AffordanceQuery(model, cache_size=2)
    for episode in (1, 2, 1, 3):  # 1 was used after 2, so 2 is the one dropped
        query(prompt(), episode_id=episode)
    instruction = prompt().instruction
    assert len(model.asked) == 3 and list(query.cache) == [('1', instruction), ('3', instruction)]
    assert query(prompt(), episode_id=1).cached
    assert not query(prompt(), episode_id=2).cached and len(model.asked) == 4
    with pytest.raises(ValueError, match='cache_size'):
        AffordanceQuery(model, cache_size=0)


@pytest.mark.parametrize('reply, why', [
    ('{"grasp": ["front", 42, 31]}', "missing required keypoints ['target']"),
    ('{"grasp": ["front", 42, 31], "target": ["front", -3, 5]}', 'outside the 120x100 image'),
    ('{"grasp": ["front", 60, 45], "target": ["front", 1, 1]}', 'from the nearest candidate'),
    ('{"grasp": 9, "target": ["front", 1, 1]}', 'no candidate 9'),
    ('{"grasp": 3, "target": ["front", 1, 1]}', "no candidate 3 in view 'front'"),
    ('{"grasp": ["top", 1, 1], "target": ["front", 1, 1]}', "unknown view 'top'"),
    ('{"grasp": ["front", 42, 31], "target": ["front", 1, 1], "handle": ["front", 1, 1]}',
     "unknown keypoint names ['handle']"),
    ('{"grasp": ["front", "x", 31], "target": ["front", 1, 1]}', 'are not pixel coordinates'),
    ('{"grasp": ["front", NaN, 31], "target": ["front", 1, 1]}', 'outside'),
])
def test_hopeless_replies_give_no_affordance_with_the_reason(reply, why):
    model = ScriptedModel(reply)
    result = AffordanceQuery(model, max_attempts=2)(prompt())
    assert not result.ok and result.affordance is None
    assert result.diagnostic.startswith('no affordance after 2 attempts: invalid reply')
    assert why in result.diagnostic
    assert model.asked == [0, 1] and result.replies == (reply, reply)


def test_backend_exceptions_are_diagnosed_not_raised():
    model = ScriptedModel(RuntimeError('CUDA out of memory'), GOOD)
    result = AffordanceQuery(model)(prompt())
    assert result.ok and result.attempts[0].error == (
        'backend error: RuntimeError: CUDA out of memory')
    result = AffordanceQuery(ScriptedModel(TimeoutError('no answer')), max_attempts=1)(prompt())
    assert not result.ok
    assert result.diagnostic == ('no affordance after 1 attempts: '
                                 'backend error: TimeoutError: no answer')


def test_empty_instruction_is_a_diagnostic_and_the_model_is_not_asked():
    model = ScriptedModel(GOOD)
    result = AffordanceQuery(model)(prompt('  '), episode_id=1)
    assert not result.ok and result.diagnostic == 'no affordance: the instruction is empty'
    assert model.asked == [] and result.attempts == ()


def test_without_candidates_any_point_in_the_image_is_accepted():
    reply = json.dumps({'grasp': ['side', 49.4, 0], 'target': ['front', 119.5, 99.2]})
    result = AffordanceQuery(ScriptedModel(reply))(prompt(candidates=()))
    assert result.ok
    target = result.affordance.keypoints['target']
    assert (target.u, target.v) == (119.0, 99.0) and target.candidate is None


def test_validate_snaps_within_five_percent_of_the_diagonal():
    tolerance = 0.05 * np.hypot(120, 100)
    near = Affordance({'grasp': Keypoint('grasp', 'front', 80.0 + tolerance - 0.1, 60.0),
                       'target': Keypoint('target', 'front', 5.0, 5.0)}, 'm')
    assert validate(near, prompt()).keypoints['grasp'].candidate == 2
    far = Affordance({'grasp': Keypoint('grasp', 'front', 80.0 + tolerance + 0.1, 60.0),
                      'target': Keypoint('target', 'front', 5.0, 5.0)}, 'm')
    with pytest.raises(ReplyError, match='nearest candidate'):
        validate(far, prompt())
