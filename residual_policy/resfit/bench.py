"""
``vrl bench rl``'s rows for the off-policy residual: collection, updates, online control steps.

Measured on the trainer itself (:class:`.trainer.ResFiTTrainer`, a temporary
run folder): environment steps per second collected with the frozen base and
the actor (no updates), gradient updates per second on the filled buffer,
and from the two the wall time of 10 k environment steps at the learner's
default update-to-data ratio. Torch runs on ``torch_threads`` threads, as the
trainer does by default: small networks gain nothing from more, and on a busy
2-core machine default threads made in-process inference 5-30x slower.

:func:`online_step_latency` times what a real arm's control loop feels of
online fine-tuning (:mod:`.online`): the time of one control step (base,
actor, recording) while updates run in the background thread, and the pause
at every episode end when they run between episodes instead.
"""

from pathlib import Path
import tempfile
import time

import numpy as np
import torch
from visual_rl_stack.core.devices import limit_thread_torch
from visual_rl_stack.core.run_layout import RESIDUAL
from visual_rl_stack.residual_policy.resip.config import ResidualTrainSettings
from visual_rl_stack.residual_policy.resip.env import ResidualTaskEnv

from .agent import ResFiTPolicyRunner
from .config import ResFiTConfig, UPDATE_MODES
from .online import OnlineResFiTLearner
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


def online_step_latency(task: str, base: str, episodes: int = 3,
                        torch_threads: int = 1) -> dict:
    """
    Return per update mode the control-step latency and episode-end pause of online learning.

    One in-process environment plays the arm; the learner starts updating at
    once (no warm-ups) at the default update-to-data ratio.
    """
    previous = torch.get_num_threads()
    limit_thread_torch(torch_threads)
    result = {'torch_threads': torch_threads, 'episodes': episodes,
              'utd': ResFiTConfig.__dataclass_fields__['utd'].default}
    env = ResidualTaskEnv(task)
    try:
        with tempfile.TemporaryDirectory() as folder:
            run = _untrained_run(task, base, Path(folder) / 'run')
            for mode in UPDATE_MODES:
                result[mode] = _online_episodes(run, env, mode, Path(folder) / mode, episodes)
    finally:
        env.close()
        torch.set_num_threads(previous)
    return result


def _untrained_run(task: str, base: str, out: Path) -> Path:
    """Write a resfit run over ``base`` whose residual is zero and whose learner never waits."""
    settings = ResidualTrainSettings(task=task, base=base, envs=1, algo='resfit',
                                     base_noise_scale=0.0, base_inference_steps=10)
    trainer = ResFiTTrainer(out, settings, {'warmup_steps': 0, 'critic_warmup_updates': 0},
                            resume=False, asynchronous=False)
    try:
        trainer.save_agent(out / RESIDUAL)
    finally:
        trainer.envs.close()
    return out


def _online_episodes(run: Path, env: ResidualTaskEnv, mode: str, out: Path,
                     episodes: int) -> dict:
    """Run ``episodes`` online episodes; time every control step and every episode end."""
    runner = ResFiTPolicyRunner(run, 'cpu')
    learner = OnlineResFiTLearner(runner, out, mode)
    steps, ends = [], []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=episode)
            runner.reset()
            reward, terminated, truncated = None, False, False
            while not (terminated or truncated):
                started = time.perf_counter()
                action = learner.act(obs, None, reward, terminated)
                steps.append(time.perf_counter() - started)
                obs, reward, terminated, truncated, _ = env.step(action)
            started = time.perf_counter()
            learner.end_episode()
            ends.append(time.perf_counter() - started)
    finally:
        learner.close()
    ms = 1000 * np.array(steps)
    return {'step_median_ms': float(np.median(ms)), 'step_p99_ms': float(np.percentile(ms, 99)),
            'episode_end_median_ms': float(1000 * np.median(ends)), 'steps': len(steps),
            'updates': learner.updates}
