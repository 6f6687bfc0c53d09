"""
``vrl bench rl``'s rows for the off-policy residual: collection, updates, wall per 10 k steps.

Measured on the trainer itself (:class:`.trainer.ResFiTTrainer`, a temporary
run folder): environment steps per second collected with the frozen base and
the actor (no updates), gradient updates per second on the filled buffer,
and from the two the wall time of 10 k environment steps at the learner's
default update-to-data ratio. Torch runs on ``torch_threads`` threads, as the
trainer does by default: small networks gain nothing from more, and on a busy
2-core machine default threads made in-process inference 5-30x slower.
"""

from pathlib import Path
import tempfile
import time

import torch
from visual_rl_stack.core.devices import limit_thread_torch
from visual_rl_stack.residual_policy.resip.config import ResidualTrainSettings

from .config import ResFiTConfig
from .trainer import ResFiTTrainer


def resfit_rate(task: str, base: str, envs: int, collect_steps: int = 100,
                updates: int = 300, torch_threads: int = 1) -> dict:
    """Return the off-policy learner's rates on ``task`` over ``base`` (module doc)."""
    previous = torch.get_num_threads()
    limit_thread_torch(torch_threads)
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = ResidualTrainSettings(task=task, base=base, envs=envs, algo='resfit',
                                             base_noise_scale=0.0, base_inference_steps=10)
            trainer = ResFiTTrainer(Path(folder) / 'run', settings, {'warmup_steps': 0},
                                    resume=False)
            try:
                trainer.begin_episodes()
                started = time.perf_counter()
                for _ in range(collect_steps):
                    trainer.collect_step()
                collect_s = time.perf_counter() - started
                learner = trainer.learner
                started = time.perf_counter()
                for _ in range(updates):
                    learner.update(learner.sample(trainer.buffer, None))
                update_s = time.perf_counter() - started
            finally:
                trainer.envs.close()
    finally:
        torch.set_num_threads(previous)
    utd = ResFiTConfig.__dataclass_fields__['utd'].default
    collect_rate = collect_steps * envs / collect_s
    update_rate = updates / update_s
    return {'collect_steps_per_s': collect_rate, 'updates_per_s': update_rate, 'utd': utd,
            'wall_s_per_10k_steps': 10_000 / collect_rate + 10_000 * utd / update_rate,
            'torch_threads': torch_threads, 'envs': envs,
            'base_plan_s': trainer.base.plan_seconds}
