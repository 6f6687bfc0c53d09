"""
What a BC training run does, as validated settings (no torch: the CLI reads them).

``vrl train-bc`` generates its flags from :class:`BCTrainSettings`. Training
settings left unset (None) are the resumed run's own, else
:data:`TRAINING_DEFAULTS`, so ``--resume`` continues a run as it was started.
The policy's own settings are :class:`..model.diffusion_policy.DiffusionPolicyConfig`.
"""

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

from visual_rl_stack.core.config_dicts import setting
from visual_rl_stack.residual_policy.diffusion_bc.model.config import OBS_MODES

#: Training settings of a new run, where the settings leave them unset.
TRAINING_DEFAULTS = {'batch_size': 256, 'lr': 1e-4, 'warmup': 500, 'seed': 0,
                     'checkpoint_every': 1000, 'log_every': 10}


@dataclass(frozen=True)
class BCTrainSettings:
    """One BC training session; None fields are the resumed run's or the defaults."""

    task: str = setting(help='task the bags demonstrate, e.g. lift')
    data: str = setting(help='folder of expert bags (from vrl collect)')
    obs_mode: str = setting('state', 'what the policy observes')
    steps: int = setting(10000, 'total optimiser steps (with --resume: the new total)')
    batch_size: Optional[int] = setting(
        None, "windows per batch (default 256; with --resume: the run's own)")
    lr: Optional[float] = setting(
        None, "peak learning rate (default 1e-4; with --resume: the run's own)")
    warmup: Optional[int] = setting(
        None, "linear warm-up steps (default 500; with --resume: the run's own)")
    seed: Optional[int] = setting(
        None, "training seed (default 0; with --resume: the run's own)")
    device: str = setting('auto', 'one of auto, cpu, cuda or cuda:N')
    views: Optional[tuple[str, ...]] = setting(
        None, 'camera views for image observations (default: all in the bags)')
    checkpoint_every: Optional[int] = setting(
        None, 'write the checkpoint every N steps and at the end (default 1000; with '
        "--resume: the run's own)")
    log_every: Optional[int] = setting(
        None, "append a metrics line every N steps (default 10; with --resume: the run's own)")

    def resolved(self, own: Mapping[str, Any]) -> 'BCTrainSettings':
        """Fill unset training settings from ``own`` (a resumed run's config), else defaults."""
        return replace(self, **{name: getattr(self, name) if getattr(self, name) is not None
                                else own.get(name, default)
                                for name, default in TRAINING_DEFAULTS.items()})

    def check(self) -> None:
        """Raise ValueError naming every resolved setting that cannot work."""
        problems = []
        if self.obs_mode not in OBS_MODES:
            problems.append(f'obs_mode must be one of {OBS_MODES}, got {self.obs_mode!r}')
        for name in ('steps', 'batch_size', 'checkpoint_every', 'log_every'):
            if getattr(self, name) < 1:
                problems.append(f'{name} must be >= 1, got {getattr(self, name)}')
        if not self.lr > 0:
            problems.append(f'lr must be > 0, got {self.lr}')
        if self.warmup < 0:
            problems.append(f'warmup must be >= 0, got {self.warmup}')
        if problems:
            raise ValueError('; '.join(problems))


@dataclass(frozen=True)
class DistillSettings:
    """A teacher-student distillation: the teacher's recorded episodes and the student's run."""

    teacher: str = setting(
        help='state-based teacher: BC or residual run folder, or shipped name')
    obs_mode: str = setting('image', 'what the student observes (image or state+image)')
    task: Optional[str] = setting(None, "task (default: the teacher's)")
    episodes: int = setting(100, 'teacher episodes to record')
    seed_start: int = setting(0, 'first teacher seed; keep it apart from evaluation seeds')
    views: tuple[str, ...] = setting(('front', 'wrist'), 'camera views the student sees')
    width: int = setting(64, 'image width (pixels)')
    height: int = setting(64, 'image height (pixels)')
    steps: int = setting(5000, 'student training steps')
    batch_size: int = setting(32, 'student batch size')
    lr: float = setting(3e-4, 'student peak learning rate')
    warmup: int = setting(200, 'student warm-up steps')
    device: str = setting('auto', 'one of auto, cpu, cuda or cuda:N')

    def student(self, task: str, data: str) -> BCTrainSettings:
        """Return the student's BC training settings on the teacher's recorded ``data``."""
        return BCTrainSettings(task=task, data=data, obs_mode=self.obs_mode, steps=self.steps,
                               batch_size=self.batch_size, lr=self.lr, warmup=self.warmup,
                               views=tuple(self.views), device=self.device)
