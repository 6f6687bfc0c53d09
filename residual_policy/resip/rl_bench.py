"""
``vrl bench rl``: residual-PPO throughput against the raw vectorised environment, in one run.

Three rates on the same task, worker count and machine, measured one after
the other:

* ``raw``: the worker environments (:func:`.env.make_residual_envs`)
  stepped with a hold-still action and nothing else: the ceiling.
* ``resip``: our residual PPO (:class:`.train_residual.ResidualTrainer`):
  rollouts with the frozen base (batched DDIM) and the residual actor, then
  the PPO update; reported for collection alone and for whole iterations.
* ``sb3``: stable-baselines3's PPO with an MLP policy on the same
  environments (no base policy; a peer figure for the PPO machinery itself),
  when the package is installed.
"""

from functools import partial
from pathlib import Path
import tempfile
import time
from typing import Optional

import numpy as np

from .config import PPOConfig, ResidualTrainSettings
from .env import make_residual_envs, ResidualTaskEnv
from .ppo import ppo_update
from .train_residual import ResidualTrainer


def raw_vector_rate(task: str, envs: int, steps: int) -> float:
    """Return env steps per second of the worker envs under a hold-still action."""
    vector = make_residual_envs(task, envs)
    try:
        vector.reset(seed=0)
        action = np.zeros(vector.action_space.shape)
        action[:, 6] = 1.0  # gripper open, no motion
        started = time.perf_counter()
        for _ in range(steps):
            vector.step(action)
        return envs * steps / (time.perf_counter() - started)
    finally:
        vector.close()


def resip_rate(task: str, base: str, envs: int, iterations: int, rollout_steps: int) -> dict:
    """Return residual-PPO rates: collection only and whole iterations (collection + update)."""
    with tempfile.TemporaryDirectory() as folder:
        settings = ResidualTrainSettings(task=task, base=base, envs=envs,
                                         rollout_steps=rollout_steps)
        trainer = ResidualTrainer(Path(folder) / 'run', settings, {}, PPOConfig(),
                                  resume=False)
        try:
            trainer.begin_episodes()
            collect_s = update_s = 0.0
            for _ in range(iterations):
                started = time.perf_counter()
                batch, _ = trainer.rollout()
                collected = time.perf_counter()
                ppo_update(trainer.agent.actor, trainer.agent.critic, trainer.optimizers,
                           batch, trainer.ppo)
                collect_s += collected - started
                update_s += time.perf_counter() - collected
        finally:
            trainer.envs.close()
    steps = iterations * rollout_steps * envs
    return {'collect_steps_per_s': steps / collect_s,
            'train_steps_per_s': steps / (collect_s + update_s),
            'update_s_per_iteration': update_s / iterations,
            'base_plans': trainer.base.plans, 'env_steps': steps}


def sb3_rate(task: str, envs: int, iterations: int, rollout_steps: int) -> dict:
    """Return stable-baselines3 PPO's env steps per second, or why it could not run."""
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import SubprocVecEnv
    except ImportError as error:
        return {'steps_per_s': None, 'reason': f'stable-baselines3 is not installed ({error})'}
    import stable_baselines3
    vector = SubprocVecEnv([partial(ResidualTaskEnv, task)] * envs, start_method='spawn')
    try:
        model = PPO('MlpPolicy', vector, n_steps=rollout_steps,
                    batch_size=rollout_steps * envs // 4, n_epochs=10, device='cpu', seed=0,
                    verbose=0)
        steps = iterations * rollout_steps * envs
        started = time.perf_counter()
        model.learn(total_timesteps=steps)
        return {'steps_per_s': steps / (time.perf_counter() - started), 'env_steps': steps,
                'version': stable_baselines3.__version__,
                'settings': {'n_steps': rollout_steps, 'n_epochs': 10, 'minibatches': 4}}
    finally:
        vector.close()


def rl_throughput(task: str, base: str, envs: int = 8, iterations: int = 3,
                  rollout_steps: Optional[int] = None, raw_steps: int = 300) -> dict:
    """Measure the three rates of the module doc; return them with their ratios."""
    rollout_steps = rollout_steps or 100
    raw = raw_vector_rate(task, envs, raw_steps)
    resip = resip_rate(task, base, envs, iterations, rollout_steps)
    sb3 = sb3_rate(task, envs, iterations, rollout_steps)
    result = {'task': task, 'base': base, 'envs': envs, 'iterations': iterations,
              'rollout_steps': rollout_steps, 'raw_steps_per_s': raw, 'resip': resip,
              'sb3': sb3, 'resip_train_over_raw': resip['train_steps_per_s'] / raw,
              'resip_collect_over_raw': resip['collect_steps_per_s'] / raw}
    if sb3.get('steps_per_s'):
        result['sb3_over_raw'] = sb3['steps_per_s'] / raw
    return result
