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

from functools import partial
import json
from pathlib import Path
from typing import Any, Mapping, Optional

from visual_rl_stack.core.policy import open_policy, PolicyOptions
from visual_rl_stack.core.records import write_json
from visual_rl_stack.data.bags import INDEX_FILE
from visual_rl_stack.data.collect import collect
from visual_rl_stack.evaluation.episodes import PolicyController
from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import train_bc

from .config import DistillSettings

DATA_DIR = 'data'
REPORT = 'distill.json'
#: The student settings of the shipped image BC models (small CNN, one observation step).
STUDENT_DEFAULTS = {'image_channels': [16, 32, 64], 'n_obs_steps': 1}


def distill(settings: DistillSettings, out_dir: Path,
            overrides: Optional[Mapping[str, Any]] = None, progress: bool = True) -> dict:
    """Record the teacher's successful episodes and train the student; return the report."""
    teacher, obs_mode, episodes = settings.teacher, settings.obs_mode, settings.episodes
    seed_start = settings.seed_start
    if 'image' not in obs_mode:
        raise ValueError(f'the student must see images (obs image or state+image), '
                         f'not {obs_mode!r}')
    runner = open_policy(teacher, PolicyOptions(device=settings.device, seed=seed_start))
    if runner.uses_images:
        raise ValueError(f'teacher {teacher} already looks at images; distil a state policy')
    task = settings.task or runner.task
    if task is None:
        raise ValueError('the teacher does not record its task; pass --task')
    out_dir = Path(out_dir)
    data_dir = collect(task, episodes, out_dir / DATA_DIR, seed_start, settings.views,
                       action_mode=runner.action_mode or 'delta', width=settings.width,
                       height=settings.height,
                       policy_factory=partial(PolicyController, runner), successes_only=True)
    recorded = json.loads((data_dir / INDEX_FILE).read_text())['episodes']
    kept = [e for e in recorded if not e.get('discarded')]
    if not kept:
        raise ValueError(f'the teacher succeeded in none of {len(recorded)} episodes; '
                         'nothing to distil')
    train_bc(settings.student(task, str(data_dir)), out_dir, progress=progress,
             config_overrides={**STUDENT_DEFAULTS, **dict(overrides or {})})
    report = {'teacher': str(teacher), 'task': task, 'student_obs': obs_mode,
              'seeds': [seed_start, seed_start + episodes - 1],
              'teacher_success_while_recording': len(kept) / len(recorded),
              'episodes_kept': len(kept), 'student_steps': settings.steps}
    write_json(report, out_dir / REPORT)
    return report
