"""``vrl bringup``: run a node graph (sim, real, replay) in one process, without ROS installed."""

import argparse
import sys
from typing import Any

from visual_rl_stack.ros.bringup import bringup, Overrides
from visual_rl_stack.ros.graph import GRAPHS
import yaml


def parse_param(text: str) -> tuple[str, str, Any]:
    """Split ``node.param=value`` (value in YAML syntax) into its parts."""
    key, sep, value = text.partition('=')
    node, dot, name = key.partition('.')
    if not (sep and dot and node and name):
        raise argparse.ArgumentTypeError(f'expected NODE.PARAM=VALUE, got {text!r}')
    return node, name, yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl bringup`` arguments to ``parser``."""
    parser.add_argument('graph', nargs='?', default='sim', choices=sorted(GRAPHS),
                        help='which graph to run (default: sim)')
    parser.add_argument('--task', help='sim_node task (sim graph)')
    parser.add_argument('--mode', choices=('realtime', 'lockstep'),
                        help='sim_node mode (sim graph)')
    parser.add_argument('--seed', type=int, help='sim_node episode seed (sim graph)')
    parser.add_argument('--param', action='append', type=parse_param, default=[],
                        metavar='NODE.PARAM=VALUE', help='override any node parameter')
    optional = sorted({spec.name for g in GRAPHS.values() for spec in g.nodes if spec.switch})
    parser.add_argument('--without', action='append', default=[], choices=optional,
                        metavar='NODE', help='leave out an optional node '
                        f'({", ".join(optional)}); repeatable')
    parser.add_argument('--duration', type=float,
                        help='stop after this many wall-clock seconds (default: until Ctrl-C)')


def main(args: argparse.Namespace) -> int:
    """Run ``vrl bringup`` from parsed arguments; return the exit status."""
    overrides: Overrides = {}
    sim_options = {'task': args.task, 'mode': args.mode, 'seed': args.seed}
    for name, value in sim_options.items():
        if value is not None:
            overrides.setdefault('sim_node', {})[name] = value
    for node, name, value in args.param:
        overrides.setdefault(node, {})[name] = value
    try:
        bringup(args.graph, overrides, args.duration, without=args.without)
    except (ImportError, ValueError, FileNotFoundError) as error:
        print(f'vrl bringup: {error}', file=sys.stderr)
        return 1
    return 0
