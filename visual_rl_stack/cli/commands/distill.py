"""``vrl distill``: distil a state-based teacher into an image-based diffusion student."""

import argparse
from pathlib import Path

from visual_rl_stack.cli.overrides import parse_override
from visual_rl_stack.core.devices import DEVICE_NAMES
from visual_rl_stack.residual_policy.diffusion_bc.training.distill import distill


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl distill`` arguments to ``parser``."""
    parser.add_argument('--teacher', required=True,
                        help='state-based teacher: BC or residual run folder, or shipped name')
    parser.add_argument('--obs', choices=('image', 'state+image'), default='image',
                        help='what the student observes')
    parser.add_argument('--out', type=Path, required=True, help='student run folder to write')
    parser.add_argument('--task', default=None, help="task (default: the teacher's)")
    parser.add_argument('--episodes', type=int, default=100, help='teacher episodes to record')
    parser.add_argument('--seed-start', type=int, default=0,
                        help='first teacher seed; keep it apart from evaluation seeds')
    parser.add_argument('--views', nargs='+', default=['front', 'wrist'],
                        help='camera views the student sees')
    parser.add_argument('--width', type=int, default=64, help='image width (pixels)')
    parser.add_argument('--height', type=int, default=64, help='image height (pixels)')
    parser.add_argument('--steps', type=int, default=5000, help='student training steps')
    parser.add_argument('--batch-size', type=int, default=32, help='student batch size')
    parser.add_argument('--lr', type=float, default=3e-4, help='student peak learning rate')
    parser.add_argument('--warmup', type=int, default=200, help='student warm-up steps')
    parser.add_argument('--set', dest='overrides', type=parse_override, action='append',
                        default=[], metavar='KEY=VALUE',
                        help='override a student DiffusionPolicyConfig field (JSON value)')
    parser.add_argument('--device', default='auto',
                        help=f'one of {", ".join(DEVICE_NAMES)} or cuda:N')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bars')


def main(args: argparse.Namespace) -> int:
    """Run ``vrl distill`` and print a one-line summary."""
    report = distill(args.teacher, args.out, args.obs, args.task, args.episodes,
                     args.seed_start, args.views, args.width, args.height, args.steps,
                     args.batch_size, args.lr, args.warmup, dict(args.overrides), args.device,
                     not args.no_progress)
    print(f'distilled {report["teacher"]} on {report["task"]}: teacher succeeded in '
          f'{report["teacher_success_while_recording"]:.0%} of its episodes, '
          f'{report["episodes_kept"]} kept; student ({report["student_obs"]}) in {args.out}')
    return 0
