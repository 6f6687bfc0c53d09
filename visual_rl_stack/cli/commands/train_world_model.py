r"""
``vrl train-world-model``: the world model from demonstration bags: the MAE, then the RSSM.

Example::

    vrl collect --task stack --episodes 40 --out runs/data/wm_stack --views front side wrist \
        --width 64 --height 64
    vrl train-world-model --task stack --data runs/data/wm_stack --out runs/wm/stack \
        --steps 3000 --time-limit-min 30 --dynamics-steps 3000

Stage 1 trains the masked autoencoder (all views but one hidden, most
patches of that one too, the mask held across a key-horizon; staged-reward
head) and holds the last episodes out: ``mae/`` (safetensors checkpoint),
``metrics.jsonl``, TensorBoard, ``curves.png``, ``reconstruction.png`` and
``summary.json``. ``--mae RUN`` reuses a trained MAE instead. Stage 2 fits
the RSSM on the frozen MAE's features of the same bags: ``rssm/``,
``dynamics_metrics.jsonl``, ``dynamics_curves.png``,
``dynamics_summary.json``. ``vrl train-horizon`` trains an agent in it.

Every flag but ``--out`` and ``--no-progress`` is a field of
:class:`visual_rl_stack.world_model.settings.WorldModelTrainSettings`; an
``--out`` that already holds a run is refused.
"""

import argparse
from pathlib import Path

from visual_rl_stack.cli.reward_flags import add_reward_setting
from visual_rl_stack.cli.settings_args import (add_run_control_arguments, add_settings_arguments,
                                               settings_from_args)
from visual_rl_stack.core.rewards import RECORDED
from visual_rl_stack.world_model.settings import WorldModelTrainSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-world-model`` arguments: the settings' fields and ``--no-progress``."""
    parser.add_argument('--out', required=True, type=Path, help='run folder to write')
    add_settings_arguments(parser, WorldModelTrainSettings, skip=('reward',))
    add_reward_setting(parser, WorldModelTrainSettings, RECORDED)
    add_run_control_arguments(parser, resume=False)


def main(args: argparse.Namespace) -> int:
    """Train (or reuse) the MAE, then the RSSM, and print where the run is."""
    from visual_rl_stack.world_model.train_world_model import (train_dynamics_stage,
                                                               train_mae_stage)
    settings = settings_from_args(WorldModelTrainSettings, args)
    mae = train_mae_stage(settings, args.out, not args.no_progress)
    if mae is None:
        print(f'reusing the MAE of {settings.mae}')
    else:
        final = mae['final']
        print(f'MAE: {mae["steps"]} steps in {mae["seconds"]:.0f} s on '
              f'{mae["train_frames"]} frames; held-out reconstruction MSE '
              f'{final["held_out_reconstruction"]:.4f} (best '
              f'{mae["best_held_out_reconstruction"]:.4f}), reward MSE '
              f'{final["held_out_reward"]:.4f}')
    summary = train_dynamics_stage(settings, args.out, not args.no_progress)
    first, final = summary['first'], summary['final']
    print(f'RSSM: {summary["steps"]} steps in {summary["seconds"]:.0f} s; held-out loss '
          f'{first["held_out_loss"]:.2f} -> {final["held_out_loss"]:.2f} (KL '
          f'{final["held_out_kl"]:.2f}); key-horizon {summary["key_horizon"]} steps')
    print(f'wrote {args.out}')
    return 0
