"""``vrl record``: record ROS topics to a rosbag2 (MCAP) bag until Ctrl-C."""

import argparse
from pathlib import Path

from visual_rl_stack.data.recorder_node import record_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl record`` arguments to ``parser``."""
    parser.add_argument('topics', nargs='*',
                        help="topics to record (default: the simulator graph's topics)")
    parser.add_argument('-o', '--output', type=Path, required=True,
                        help='bag folder to create (must not exist)')
    parser.add_argument('--duration', type=float, default=None,
                        help='stop after this many seconds (default: until Ctrl-C)')


def main(args: argparse.Namespace) -> int:
    """Run ``vrl record`` from parsed arguments."""
    record_main(args.topics, args.output, args.duration)
    return 0
