"""
``vrl train-affordance``: train the default KAGI keypoint model on simulator scenes.

Example::

    vrl train-affordance --out runs/affordance --time-limit-min 25

Every setting is a flag (``--episodes 700 --steps 3500 --batch-size 16``);
scenes are rendered first (seeds 0 .. episodes-1 per task for training, from
900 for validation), then the network trains. The run folder layout is in
:mod:`visual_rl_stack.vlm_affordance.keypoint_model.train`.
"""

import argparse
import json
from pathlib import Path

from visual_rl_stack.cli.settings_args import add_settings_arguments, settings_from_args
from visual_rl_stack.vlm_affordance.keypoint_model.config import KeypointTrainSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-affordance`` arguments: the run folder and the settings' fields."""
    parser.add_argument('--out', type=Path, required=True, help='run folder to write')
    add_settings_arguments(parser, KeypointTrainSettings)
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bars')


def main(args: argparse.Namespace) -> int:
    """Train, then print a one-line summary."""
    from visual_rl_stack.core.run_layout import SUMMARY
    from visual_rl_stack.vlm_affordance.keypoint_model.train import train_keypoints
    checkpoint = train_keypoints(settings_from_args(KeypointTrainSettings, args), args.out,
                                 progress=not args.no_progress)
    summary = json.loads((Path(args.out) / SUMMARY).read_text())
    print(f'trained the keypoint model for {summary["steps"]} steps in '
          f'{summary["wall_s"] / 60:.1f} min ({summary["data_s"] / 60:.1f} min of scenes): '
          f'validation pixel error {summary["val_pixel_error"]:.2f}, checkpoint {checkpoint}')
    return 0
