"""
What a residual training run does, as validated settings (no torch: the CLI reads them).

:class:`ResidualTrainSettings` is the single definition of the run's settings:
``vrl train-residual`` generates its flags from these fields, so a flag's name,
type, default and help are the field's. The residual network and PPO settings
are :class:`.actor_critic.ResidualConfig` and :class:`.ppo.PPOConfig`.
"""

from dataclasses import dataclass
import math
from typing import Optional

from visual_rl_stack.core.config_dicts import setting


@dataclass(frozen=True)
class ResidualTrainSettings:
    """What a residual run does besides the network and PPO settings; JSON-serialisable."""

    task: str = setting(help='task to train on, e.g. peg_insert')
    base: str = setting(help='frozen base: shipped model name or state-based BC run folder')
    envs: int = setting(8, 'parallel simulator worker processes')
    total_steps: int = setting(1_000_000,
                               'environment steps to train for (with --resume: the new total)')
    rollout_steps: Optional[int] = setting(
        None, 'steps per env per PPO iteration (default: the episode limit)')
    base_inference_steps: int = setting(4, 'DDIM steps of the frozen base inside RL')
    base_noise_scale: float = setting(
        1.0, "scale of the frozen base's initial noise per chunk (0: a deterministic base; "
        'evaluation then uses the same)')
    base_action_steps: Optional[int] = setting(
        None, "actions the frozen base executes per chunk (default: the base's "
        'n_action_steps; evaluation then uses the same)')
    eval_every: int = setting(5, 'validate the deterministic policy every N iterations')
    val_episodes: int = setting(16, 'validation episodes (seeds --val-seed-start ..)')
    val_seed_start: int = setting(2000,
                                  'first validation seed; keep it apart from evaluation seeds')
    reward: str = setting(
        'sparse', 'reward function (sparse: +1 on success; stages: +1 per new stage of a '
        "multi-stage task too; shaped: sparse plus the decrease of the task's goal distance, "
        "1 per 5 cm; upright: sparse minus the growth of the peg's tilt, 1 per 90 degrees)")
    seed: int = setting(0, 'training seed')
    time_limit_min: Optional[float] = setting(
        None, 'stop this session after N minutes (at an iteration boundary)')
    init_residual: Optional[str] = setting(
        None, 'start from the residual (actor and critic) of this residual run or shipped '
        'model, trained over the same base and base settings')

    def check(self) -> None:
        """Raise ValueError listing every setting that cannot work."""
        problems = [f'{name} must be >= 1' for name in
                    ('envs', 'total_steps', 'base_inference_steps', 'eval_every', 'val_episodes')
                    if getattr(self, name) < 1]
        if self.rollout_steps is not None and self.rollout_steps < 1:
            problems.append('rollout_steps must be >= 1')
        if not (math.isfinite(self.base_noise_scale) and self.base_noise_scale >= 0):
            problems.append('base_noise_scale must be a finite number >= 0')
        if self.time_limit_min is not None and self.time_limit_min <= 0:
            problems.append('time_limit_min must be > 0')
        if problems:
            raise ValueError('invalid residual training settings: ' + '; '.join(problems))
