"""
``vrl distill``: teacher-student distillation of a state-based policy into an image policy.

The teacher (a state-based BC run or a base + residual run) acts in the
simulator with privileged state while the cameras record; its episodes are
written as bags in the same format as expert demonstrations (``vrl
collect``), keeping only the successful ones, and an image-based diffusion
student is behaviour-cloned from them (``vrl train-bc``). Layout::

    OUT/data/           the teacher's successful episodes (bags + index.json)
    OUT/                the student's BC run (checkpoint/, config.json, ...)
    OUT/distill.json    teacher, seeds, teacher success while recording, episodes kept

Example::

    vrl distill --teacher runs/rl/resip_stack --obs image --out runs/distill/stack
    vrl eval --task stack --policy runs/distill/stack --episodes 100 --seed-start 1000
"""

import argparse
from functools import partial
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .bags import INDEX_FILE
from .devices import DEVICE_NAMES
from .evaluation import write_json
from .train_bc_command import parse_override

DATA_DIR = 'data'
REPORT = 'distill.json'
#: The student settings of the shipped image BC models (small CNN, one observation step).
STUDENT_DEFAULTS = {'image_channels': [16, 32, 64], 'n_obs_steps': 1}


def distill(teacher: str, out_dir: Path, obs_mode: str = 'image', task: Optional[str] = None,
            episodes: int = 100, seed_start: int = 0,
            views: Sequence[str] = ('front', 'wrist'), width: int = 64, height: int = 64,
            steps: int = 5000, batch_size: int = 32, lr: float = 3e-4, warmup: int = 200,
            overrides: Optional[Mapping[str, Any]] = None, device: str = 'auto',
            progress: bool = True) -> dict:
    """Record the teacher's successful episodes and train the student; return the report."""
    from .collect import collect
    from .residual_policy.bc_runner import BCSimPolicy
    from .residual_policy.residual_agent import open_policy_runner
    from .residual_policy.train_bc import train_bc
    if 'image' not in obs_mode:
        raise ValueError(f'the student must see images (obs image or state+image), '
                         f'not {obs_mode!r}')
    runner = open_policy_runner(teacher, device, seed=seed_start)
    if runner.uses_images:
        raise ValueError(f'teacher {teacher} already looks at images; distil a state policy')
    task = task or runner.task
    if task is None:
        raise ValueError('the teacher does not record its task; pass --task')
    out_dir = Path(out_dir)
    data_dir = collect(task, episodes, out_dir / DATA_DIR, seed_start, views,
                       action_mode=runner.action_mode or 'delta', width=width, height=height,
                       policy_factory=partial(BCSimPolicy, runner), successes_only=True)
    recorded = json.loads((data_dir / INDEX_FILE).read_text())['episodes']
    kept = [e for e in recorded if not e.get('discarded')]
    if not kept:
        raise ValueError(f'the teacher succeeded in none of {len(recorded)} episodes; '
                         'nothing to distil')
    train_bc(data_dir, out_dir, task, obs_mode=obs_mode, steps=steps, batch_size=batch_size,
             lr=lr, warmup=warmup, views=list(views), device=device, progress=progress,
             config_overrides={**STUDENT_DEFAULTS, **dict(overrides or {})})
    report = {'teacher': str(teacher), 'task': task, 'student_obs': obs_mode,
              'seeds': [seed_start, seed_start + episodes - 1],
              'teacher_success_while_recording': len(kept) / len(recorded),
              'episodes_kept': len(kept), 'student_steps': steps}
    write_json(report, out_dir / REPORT)
    return report


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
