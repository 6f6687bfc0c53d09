"""``vrl call``: the service calls a user of the graph needs, for machines without ``ros2``."""

import argparse
import sys

from visual_rl_stack.ros import topics

#: action -> (the ``ros2 service call`` it stands for, help).
ACTIONS = {
    'activate': ('ros2 service call /policy_node/activate std_srvs/srv/SetBool "{data: true}"',
                 'start the policy node acting'),
    'deactivate': ('ros2 service call /policy_node/activate std_srvs/srv/SetBool '
                   '"{data: false}"', 'stop the policy node (it holds the arm still)'),
    'step': (f'ros2 service call {topics.SIM_STEP} std_srvs/srv/Trigger',
             'advance a lockstep simulator by --count control steps'),
    'reset': (f'ros2 service call {topics.SIM_RESET} std_srvs/srv/Trigger',
              'start a new simulator episode'),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl call`` arguments to ``parser``."""
    parser.add_argument('action', choices=list(ACTIONS), help='; '.join(
        f'{name}: {text} (as `{command}`)' for name, (command, text) in ACTIONS.items()))
    parser.add_argument('--count', type=int, default=1, help='step: control steps to take')
    parser.add_argument('--node', default='policy_node',
                        help='activate/deactivate: the policy node name (default policy_node)')
    parser.add_argument('--timeout', type=float, default=10.0,
                        help='seconds to wait for the service and for each answer')


def main(args: argparse.Namespace) -> int:
    """Make the call(s); print each answer; exit 1 when one reports failure."""
    from std_srvs.srv import SetBool, Trigger
    from visual_rl_stack.ros.service_call import call_services
    if args.count < 1:
        raise ValueError('--count must be >= 1')
    if args.action in ('activate', 'deactivate'):
        service, name = SetBool, f'/{args.node}/activate'
        requests = [SetBool.Request(data=args.action == 'activate')]
    else:
        service, name = Trigger, topics.SIM_STEP if args.action == 'step' else topics.SIM_RESET
        requests = [Trigger.Request() for _ in range(args.count if args.action == 'step' else 1)]
    try:
        responses = call_services(service, name, requests, args.timeout)
    except TimeoutError as error:
        print(f'vrl call: {error}', file=sys.stderr)
        return 1
    failed = [r for r in responses if not r.success]
    last = failed[0] if failed else responses[-1]
    print(f'{name}: {"failed" if failed else "ok"}'
          + (f' ({len(responses)} calls)' if len(responses) > 1 else '')
          + (f': {last.message}' if last.message else ''))
    return 1 if failed else 0
