"""
How often a residual's bound clips the demonstrations: the expert's action against the base's.

For every successful demonstration step, the gap between the recorded action
and the frozen base's (both normalised, the base run deterministically at
DDIM 4 as the resfit runs run it) is compared with residual bounds; a step
whose gap exceeds the bound on any axis is one ``--demo-actions clipped``
stores with an action that did not reach its next state.

    python tools/demo_clip_fraction.py runs/kagi/bc_pp30 runs/data/pp_few
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from visual_rl_stack.residual_policy.diffusion_bc.batched_base import BatchedBasePolicy
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import DiffusionPolicy
from visual_rl_stack.residual_policy.resfit.demos import _base_along, load_demo_episodes
from visual_rl_stack.residual_policy.resip.agent import NormalisedSpace


def main() -> None:
    """Print the clipped share of demonstration steps per bound and axis."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('base', type=Path, help='state BC run folder (with checkpoint/)')
    parser.add_argument('demos', type=Path, help='folder of demonstration bags')
    parser.add_argument('--bounds', type=float, nargs='+', default=[0.05, 0.1, 0.2, 0.5])
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = DiffusionPolicy.from_checkpoint(args.base / 'checkpoint')
    space = NormalisedSpace(policy)
    episodes = load_demo_episodes(args.demos)
    base = BatchedBasePolicy(policy, len(episodes), 4, 0, 0.0,
                             policy.config.executed_steps(None))
    gaps = []
    for episode, base_raw in zip(episodes, _base_along(episodes, base, False)):
        done = int(np.argmax(episode.success)) + 1
        states = episode.state[:done]
        with torch.no_grad():
            gaps.append((space.action_norm(episode.action[:done], states)
                         - space.action_norm(base_raw[:done], states)).abs().numpy())
    gap = np.concatenate(gaps)
    for bound in args.bounds:
        print(f'bound {bound}: {np.mean((gap > bound).any(1)):.0%} of steps clipped on some '
              f'axis; per axis {np.round(np.mean(gap > bound, 0), 2).tolist()}')
    median = ' '.join(f'{v:.3f}' for v in np.median(gap, 0))
    p90 = ' '.join(f'{v:.3f}' for v in np.percentile(gap, 90, 0))
    print(f'gap per axis: median {median}; 90th percentile {p90}')


if __name__ == '__main__':
    main()
