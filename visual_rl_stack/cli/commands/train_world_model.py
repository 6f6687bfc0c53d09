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
"""

import argparse
from pathlib import Path
import shutil

from visual_rl_stack.cli.reward_flags import add_reward_argument
from visual_rl_stack.core.rewards import PLANNER_STAGES, RECORDED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-world-model`` arguments to ``parser``."""
    parser.add_argument('--task', required=True, help='task of the demonstrations, e.g. stack')
    parser.add_argument('--data', required=True, type=Path, help='folder of episode bags')
    parser.add_argument('--out', required=True, type=Path, help='run folder to write')
    parser.add_argument('--views', nargs='+', default=['front', 'side', 'wrist'],
                        help='camera views, in order')
    parser.add_argument('--image-size', type=int, default=64, help='pixels per view side')
    parser.add_argument('--width', type=int, default=128, help='token width')
    parser.add_argument('--encoder-layers', type=int, default=4, help='ViT encoder layers')
    parser.add_argument('--decoder-layers', type=int, default=2, help='ViT decoder layers')
    parser.add_argument('--patch-ratio', type=float, default=0.75,
                        help="part of the kept view's patches that is masked too")
    parser.add_argument('--steps', type=int, default=3000, help='optimiser steps')
    parser.add_argument('--batch', type=int, default=16, help='clips per batch')
    parser.add_argument('--clip', type=int, default=2, help='frames per clip (one tube mask)')
    parser.add_argument('--lr', type=float, default=3e-4, help='AdamW learning rate')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--log-every', type=int, default=100, help='steps between checks')
    parser.add_argument('--time-limit-min', type=float,
                        help='stop the MAE after this many minutes')
    parser.add_argument('--mae', type=Path,
                        help='reuse the MAE of this world-model run instead of training one')
    parser.add_argument('--dynamics-steps', type=int, default=2000, help='RSSM optimiser steps')
    parser.add_argument('--dynamics-time-limit-min', type=float,
                        help='stop the RSSM after this many minutes')
    add_reward_argument(parser, PLANNER_STAGES, RECORDED,
                        "the reward the RSSM's head learns (the agent may retrain it)")
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def main(args: argparse.Namespace) -> int:
    """Train (or reuse) the MAE, then the RSSM, and print where the run is."""
    from visual_rl_stack.world_model.dynamics.training import RSSMTrainSettings, train_rssm
    from visual_rl_stack.world_model.mae.model import MAE_DIR
    if args.mae is not None:
        if not (args.mae / MAE_DIR).is_dir():
            print(f'error: {args.mae} has no {MAE_DIR}/ checkpoint')
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(args.mae / MAE_DIR, args.out / MAE_DIR, dirs_exist_ok=True)
        shutil.copy(args.mae / 'config.json', args.out / 'config.json')
        print(f'reusing the MAE of {args.mae}')
    else:
        train_mae_stage(args)
    dynamics = RSSMTrainSettings(args.task, str(args.data), steps=args.dynamics_steps,
                                 seed=args.seed, time_limit_min=args.dynamics_time_limit_min,
                                 reward=args.reward)
    summary = train_rssm(dynamics, args.out, not args.no_progress)
    first, final = summary['first'], summary['final']
    print(f'RSSM: {summary["steps"]} steps in {summary["seconds"]:.0f} s; held-out loss '
          f'{first["held_out_loss"]:.2f} -> {final["held_out_loss"]:.2f} (KL '
          f'{final["held_out_kl"]:.2f}); key-horizon {summary["key_horizon"]} steps')
    print(f'wrote {args.out}')
    return 0


def train_mae_stage(args: argparse.Namespace) -> None:
    """Train the MAE into the run folder and print how it did."""
    from visual_rl_stack.world_model.mae.model import MAEConfig
    from visual_rl_stack.world_model.mae.training import MAETrainSettings, train_mae
    config = MAEConfig(views=tuple(args.views), image_size=args.image_size, width=args.width,
                       encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers,
                       patch_ratio=args.patch_ratio)
    settings = MAETrainSettings(args.task, str(args.data), steps=args.steps, batch=args.batch,
                                lr=args.lr, seed=args.seed, log_every=args.log_every,
                                time_limit_min=args.time_limit_min, clip=args.clip)
    summary = train_mae(settings, config, args.out, not args.no_progress)
    final = summary['final']
    print(f'MAE: {summary["steps"]} steps in {summary["seconds"]:.0f} s on '
          f'{summary["train_frames"]} frames; held-out reconstruction MSE '
          f'{final["held_out_reconstruction"]:.4f} (best '
          f'{summary["best_held_out_reconstruction"]:.4f}), reward MSE '
          f'{final["held_out_reward"]:.4f}')
