"""
How much per-step action noise a frozen base tolerates, per group of action axes.

The off-policy residual explores with Gaussian noise on every control step
(``--exploration-std`` times ``--residual-scale``, in the base's normalised
action units). This runs the base deterministically on the validation seeds
the resfit trainer uses, with that much noise added to chosen axes only, so
the exploration noise can be sized to what the task tolerates before the
runs that depend on it.

    python tools/base_noise_sensitivity.py --task stack --base bc_state_stack --std 0.04
"""

import argparse
import json
from pathlib import Path
import tempfile

import torch
from visual_rl_stack.core.devices import limit_thread_torch
from visual_rl_stack.residual_policy.resfit.trainer import ResFiTTrainer
from visual_rl_stack.residual_policy.resip.config import ResidualTrainSettings

#: Axis groups of the 7-D delta action ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``.
GROUPS = {'none': (), 'all': tuple(range(7)), 'translation': (0, 1, 2),
          'rotation': (3, 4, 5), 'gripper': (6,)}


def noisy(std: float, axes: tuple[int, ...], generator: torch.Generator):
    """Return a validation action: the base's plus Gaussian noise of ``std`` on ``axes``."""
    def action(state_norm: torch.Tensor, base_norm: torch.Tensor) -> torch.Tensor:
        noise = torch.zeros_like(base_norm)
        if axes:
            noise[:, list(axes)] = std * torch.randn((len(base_norm), len(axes)),
                                                     generator=generator)
        return base_norm + noise
    return action


def main() -> None:
    """Print (and optionally write) the validation success per noised axis group."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--task', required=True)
    parser.add_argument('--base', required=True, help='shipped model name or state BC run')
    parser.add_argument('--std', type=float, required=True,
                        help='noise std in normalised action units')
    parser.add_argument('--groups', nargs='+', default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument('--base-steps', type=int, default=10, help='DDIM steps of the base')
    parser.add_argument('--episodes', type=int, default=32)
    parser.add_argument('--seed-start', type=int, default=2000)
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    limit_thread_torch(1)
    settings = ResidualTrainSettings(task=args.task, base=args.base, envs=4, algo='resfit',
                                     base_noise_scale=0.0, base_inference_steps=args.base_steps,
                                     val_episodes=args.episodes, val_seed_start=args.seed_start)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        trainer = ResFiTTrainer(Path(folder) / 'run', settings, {}, resume=False)
        try:
            generator = torch.Generator().manual_seed(0)
            for group in args.groups:
                trainer.validation_action = noisy(args.std, GROUPS[group], generator)
                results[group] = trainer.evaluate()['val_success']
                print(f'noise {args.std} on {group}: {results[group]:.0%} of {args.episodes}',
                      flush=True)
        finally:
            trainer.envs.close()
    if args.json:
        args.json.write_text(json.dumps({**vars(args), 'json': str(args.json),
                                         'success': results}, indent=2) + '\n')


if __name__ == '__main__':
    main()
