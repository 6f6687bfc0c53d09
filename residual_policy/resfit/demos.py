"""
Demonstration bags as residual transitions: what the base would have done, and the correction.

Every batch the learner draws holds a share of demonstrations (RLPD, ResFiT),
so the critic sees successes from the first update on, however weak the
base. A demonstration step becomes a residual transition by running the
frozen base along the recorded states (its own receding-horizon schedule,
all episodes in one batch). The sent action is, with ``demo_actions``
``clipped``, the base action plus the residual toward the recorded one
clipped to the residual's bound (an action the policy can send; but the
next state is the one the recorded action reached), or with ``recorded``
the recorded action itself (a true transition whose correction may exceed
the bound). The reward is relabelled from the recorded success (the sparse
reward: +1 on the step that succeeds, which ends the episode). Only
successful demonstrations are used: a failed one ends without its last
observation, which a time-limit bootstrap would need.
"""

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm
from visual_rl_stack.data.dataset import BagDataset, Episode
from visual_rl_stack.residual_policy.diffusion_bc.batched_base import BatchedBasePolicy
from visual_rl_stack.residual_policy.resip.agent import NormalisedSpace

from .config import ResFiTConfig
from .networks import combine
from .replay import Batch, episode_transitions, FIELDS, ReplayBuffer

#: Rewards a demonstration can be relabelled with from what a bag records.
DEMO_REWARDS = ('sparse',)


def demo_buffer(folder: Path, make_base: Callable[[int], BatchedBasePolicy],
                space: NormalisedSpace, config: ResFiTConfig, reward: str) -> ReplayBuffer:
    """
    Return the successful demonstrations in ``folder`` as a fixed buffer of transitions.

    ``make_base(n)`` returns the frozen base for ``n`` environments, run as
    the learner's episodes run it. Demonstrations whose state layout is not
    the base's (another task, another robot) are refused.
    """
    episodes = load_demo_episodes(Path(folder))
    base = make_base(len(episodes))
    expected = [tuple(label) for label in base.policy.config.state_labels]
    for episode in episodes:
        found = [tuple(label) for label in episode.state_labels]
        if (expected and found != expected) or (
                episode.state.shape[1] != base.policy.config.state_dim):
            raise ValueError(f'demonstration {episode.name} in {folder} records the state '
                             f'{found}; the base observes {expected or "another width"}: '
                             'demonstrations of another task?')
    batch = demo_transitions(episodes, base, space, config, reward)
    demos = ReplayBuffer(len(batch['reward']), config.state_dim, config.action_dim)
    demos.add(batch)
    return demos


def load_demo_episodes(folder: Path) -> list[Episode]:
    """Return the successful episodes of the bags in ``folder``; refuse none."""
    dataset = BagDataset(Path(folder), views=[])
    episodes = list(dataset.episodes())
    if not episodes:
        raise ValueError(f'no episode bags in {folder}')
    successes = [e for e in episodes if e.succeeded and len(e) > 0]
    if not successes:
        raise ValueError(f'none of the {len(episodes)} demonstrations in {folder} succeeded; '
                         'the learner needs successful demonstrations')
    return successes


def demo_transitions(episodes: list[Episode], base: BatchedBasePolicy, space: NormalisedSpace,
                     config: ResFiTConfig, reward: str, progress: bool = False) -> Batch:
    """Return the n-step transitions of ``episodes``, with base actions and residuals."""
    if reward not in DEMO_REWARDS:
        raise ValueError(f'demonstrations can be relabelled with {", ".join(DEMO_REWARDS)} '
                         f'only (from the recorded success), not {reward!r}; train without '
                         '--demos or with --reward sparse')
    if base.num_envs != len(episodes):
        raise ValueError('the batched base needs one environment per demonstration')
    base_actions = _base_along(episodes, base, progress)
    parts = []
    for episode, base_raw in zip(episodes, base_actions):
        done = int(np.argmax(episode.success)) + 1  # steps up to the first success
        states = episode.state[:done]
        with torch.no_grad():
            state = space.state_norm(states)
            base_norm = space.action_norm(base_raw[:done], states)
            recorded = space.action_norm(episode.action[:done], states)
            if config.demo_actions == 'recorded':
                sent = recorded
            else:
                residual = ((recorded - base_norm) / config.residual_scale).clamp(-1.0, 1.0)
                sent = combine(config, base_norm, residual)
        rewards = np.zeros(done, np.float32)
        rewards[-1] = 1.0
        parts.append(episode_transitions(
            state.numpy(), base_norm.numpy(), sent.numpy(), rewards, True,
            state[-1].numpy(), base_norm[-1].numpy(), config.n_step, config.gamma))
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}


def _base_along(episodes: list[Episode], base: BatchedBasePolicy,
                progress: bool) -> list[np.ndarray]:
    """Return the base's action at every recorded step, all episodes in one batch."""
    longest = max(len(e) for e in episodes)
    actions = np.zeros((len(episodes), longest, episodes[0].action.shape[1]), np.float32)
    base.reset()
    for t in tqdm(range(longest), desc='base along demonstrations', disable=not progress):
        states = np.stack([e.state[min(t, len(e) - 1)] for e in episodes])
        actions[:, t] = base.act(states)
    return [actions[i, :len(e)] for i, e in enumerate(episodes)]
