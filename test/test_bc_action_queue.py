"""The action queue executes the right slice of each chunk; the history pads at episode start."""

import numpy as np
import pytest
import torch
from visual_rl_stack.residual_policy.diffusion_bc.action_queue import (ActionQueue,
                                                                       ObservationHistory)


def _chunk(horizon: int = 16) -> np.ndarray:
    return np.arange(horizon, dtype=np.float32)[:, None].repeat(2, axis=1)


def test_pops_n_action_steps_from_current_step_then_asks_to_replan():
    queue = ActionQueue(n_action_steps=8, n_obs_steps=2)
    assert queue.needs_plan()
    queue.push_chunk(_chunk())
    popped = [queue.pop()[0] for _ in range(8)]
    assert popped == list(range(1, 9))  # index n_obs_steps - 1 is the current step
    assert queue.needs_plan() and len(queue) == 0
    with pytest.raises(IndexError):
        queue.pop()


def test_batched_torch_chunks_and_reset():
    queue = ActionQueue(n_action_steps=4)
    queue.push_chunk(torch.arange(32.0).reshape(2, 8, 2))
    assert torch.equal(queue.pop(), torch.tensor([[0.0, 1.0], [16.0, 17.0]]))
    assert len(queue) == 3
    queue.reset()
    assert queue.needs_plan() and len(queue) == 0


def test_short_chunk_is_refused():
    with pytest.raises(ValueError, match='shorter'):
        ActionQueue(n_action_steps=8, n_obs_steps=2).push_chunk(_chunk(8))


def test_warm_start_returns_shifted_tail_only_when_enabled_and_executed():
    queue = ActionQueue(n_action_steps=8, warm_start=True)
    queue.push_chunk(_chunk())
    assert queue.warm_start_chunk() is None  # still executing
    for _ in range(8):
        queue.pop()
    warm = queue.warm_start_chunk()
    assert warm.shape == (16, 2)
    assert list(warm[:, 0]) == list(range(8, 16)) + [15] * 8
    cold = ActionQueue(n_action_steps=8)
    cold.push_chunk(_chunk())
    assert cold.warm_start_chunk() is None


def test_history_pads_with_first_observation_then_slides():
    history = ObservationHistory(n_obs_steps=3)
    history.append({'state': np.array([1.0])})
    assert history.stacked()['state'][:, 0].tolist() == [1.0, 1.0, 1.0]
    history.append({'state': np.array([2.0])})
    history.append({'state': np.array([3.0])})
    history.append({'state': np.array([4.0])})
    assert history.stacked()['state'][:, 0].tolist() == [2.0, 3.0, 4.0]
    history.reset()
    with pytest.raises(IndexError):
        history.stacked()
