r"""
``vrl keyframes``: the key frames of recorded episodes, with a PNG strip per episode.

Example::

    vrl keyframes --bags runs/data/stack --out runs/keyframes/stack

Keyframes are found from the recorded joint positions and finger width (arm
stopped with the gripper unchanged, gripper opens or closes, the last frame); the
recorded gripper commands give the precision and recall of the gripper
keyframes. Writes ``keyframes.json`` (per episode: keyframes, reasons,
key-horizons, gripper events) and ``<bag>_keyframes.png`` into ``--out``. A
bag that cannot be read is reported and skipped.
"""

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl keyframes`` arguments to ``parser``."""
    parser.add_argument('--bags', required=True, type=Path, help='folder of episode bags')
    parser.add_argument('--out', type=Path, help='output folder (default: BAGS/keyframes)')
    parser.add_argument('--velocity-threshold', type=float, default=0.1,
                        help='joint speed (rad/s) under which the arm has stopped')
    parser.add_argument('--max-gripper-width', type=float, default=0.08,
                        help='full finger opening of the gripper (m; Panda: 0.08)')
    parser.add_argument('--closed-fraction', type=float, default=0.65,
                        help='part of the full opening under which the gripper closes')
    parser.add_argument('--open-fraction', type=float, default=0.8,
                        help='part of the full opening above which a closed gripper opens')
    parser.add_argument('--window', type=int, default=2,
                        help='frames within which a keyframe matches a gripper command')
    parser.add_argument('--no-plots', action='store_true', help='write the JSON only')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def main(args: argparse.Namespace) -> int:
    """Find every bag's keyframes, write the JSON and strips, print the summary."""
    import json
    import sys

    from tqdm import tqdm
    from visual_rl_stack.data.bags import BagError
    from visual_rl_stack.data.dataset import episode_bags
    from visual_rl_stack.world_model.keyframe_bags import bag_keyframes, summarise
    from visual_rl_stack.world_model.keyframes import KeyframeSettings
    settings = KeyframeSettings(args.velocity_threshold, args.max_gripper_width,
                                args.closed_fraction, args.open_fraction)
    out = args.out or args.bags / 'keyframes'
    episodes, skipped = [], []
    for bag in tqdm(episode_bags(args.bags), desc='keyframes', disable=args.no_progress):
        try:
            episodes.append(bag_keyframes(bag, None if args.no_plots else out, settings,
                                          args.window))
        except BagError as error:
            print(f'skipped: {error}', file=sys.stderr)
            skipped.append({'bag': bag.name, 'error': str(error)})
    if not episodes:
        raise ValueError(f'no readable episode bag in {args.bags}')
    summary = summarise(episodes, args.window)
    out.mkdir(parents=True, exist_ok=True)
    report = {'bags': str(args.bags), **summary, 'skipped': skipped,
              'per_episode': [e.to_dict() for e in episodes]}
    (out / 'keyframes.json').write_text(json.dumps(report, indent=2) + '\n')
    for episode in episodes:
        print(f'{episode.bag}: keyframes {list(episode.keyframes.indices)} '
              f'({", ".join(episode.keyframes.reasons)})')
    print(f'{summary["episodes"]} episodes, {summary["keyframes_per_episode"]:.1f} keyframes '
          f'each; gripper keyframes precision {_pct(summary["precision"])}, gripper events '
          f'recall {_pct(summary["recall"])} (within {args.window} frames)')
    print(f'wrote {out / "keyframes.json"}')
    return 0


def _pct(value) -> str:
    return 'n/a' if value is None else f'{value:.0%}'
