"""``vrl play``: play rosbag2 bags onto DDS at their recorded timing, or in lockstep."""

import argparse

from visual_rl_stack.data.player_node import play_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl play`` arguments to ``parser``."""
    parser.add_argument('bags', nargs='+',
                        help='bag folders (or folders of bags), played one after another')
    parser.add_argument('--rate', type=float, default=1.0,
                        help='speed as a multiple of the recorded timing (default 1)')
    parser.add_argument('--clock', action='store_true',
                        help='publish /clock from the recording times (when the bags hold none)')
    parser.add_argument('--topics', nargs='+', default=None,
                        help='play only these topics (default: every playable one)')
    parser.add_argument('--loop', action='store_true',
                        help='start again after the last bag, until Ctrl-C')
    parser.add_argument('--delay', type=float, default=0.5,
                        help='seconds to wait before the first message, so that subscribers '
                             '(a recorder, a node graph) can match the new publishers '
                             '(default 0.5)')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='SECONDS',
                        help='first wait (up to SECONDS) until every played topic has a '
                             'subscriber: for a recorder or graph started after the player, '
                             'which would otherwise miss the first messages (default 0: off)')
    parser.add_argument('--paused', action='store_true',
                        help='start paused: step with the services /player/step (a control '
                             'step), /player/play_next (a message), /player/pause')


def main(args: argparse.Namespace) -> int:
    """Run ``vrl play`` from parsed arguments."""
    play_main(args.bags, rate=args.rate, clock=args.clock, topic_names=args.topics,
              loop=args.loop, start_paused=args.paused, delay=args.delay,
              wait_for_subscribers=args.wait_for_subscribers)
    return 0
