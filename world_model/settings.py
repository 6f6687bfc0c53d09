"""
What ``vrl train-world-model`` and ``vrl train-horizon`` do, as validated settings (no torch).

The commands generate their flags from these fields (name, type, default and
help, :func:`visual_rl_stack.cli.settings_args.add_settings_arguments`), and
the trainers take the settings whole, so a flag and what the trainer does
with it cannot drift apart. A bad value is refused when the settings are
built, before any data is read or anything is trained.
"""

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from visual_rl_stack.core.config_dicts import setting
from visual_rl_stack.core.rewards import PLANNER_STAGES, RECORDED, reward_offering


def _below(settings: Any, names: Sequence[str], low: float, strict: bool = False) -> list[str]:
    """Name the fields of ``settings`` under ``low`` (or at it, ``strict``); None is unset."""
    sign = '>' if strict else '>='
    return [f'{name} must be {sign} {low}, got {value}' for name in names
            if (value := getattr(settings, name)) is not None
            and not (value > low if strict else value >= low)]


def _refuse(what: str, problems: list[str]) -> None:
    """Raise one ValueError listing every problem, so a run is fixed in one go."""
    if problems:
        raise ValueError(f'invalid {what} settings: ' + '; '.join(problems))


@dataclass(frozen=True)
class WorldModelTrainSettings:
    """A world-model run: the MAE's sizes and training (or a reused MAE), then the RSSM's."""

    task: str = setting(help='task of the demonstrations, e.g. stack')
    data: str = setting(help='folder of episode bags')
    views: tuple[str, ...] = setting(('front', 'side', 'wrist'), 'camera views, in order')
    image_size: int = setting(64, 'pixels per view side')
    width: int = setting(128, 'token width')
    encoder_layers: int = setting(4, 'ViT encoder layers')
    decoder_layers: int = setting(2, 'ViT decoder layers')
    patch_ratio: float = setting(0.75, "part of the kept view's patches that is masked too")
    steps: int = setting(3000, 'MAE optimiser steps')
    batch: int = setting(16, 'clips per batch')
    clip: int = setting(2, 'frames per clip (one tube mask)')
    lr: float = setting(3e-4, 'AdamW learning rate of the MAE')
    seed: int = setting(0, 'training seed')
    log_every: int = setting(100, 'MAE steps between held-out checks')
    time_limit_min: Optional[float] = setting(None, 'stop the MAE after this many minutes')
    mae: Optional[str] = setting(
        None, 'reuse the MAE of this world-model run instead of training one')
    dynamics_steps: int = setting(2000, 'RSSM optimiser steps')
    dynamics_time_limit_min: Optional[float] = setting(
        None, 'stop the RSSM after this many minutes')
    reward: str = setting(PLANNER_STAGES,
                          "the reward the RSSM's head learns (the agent may retrain it)")

    def __post_init__(self) -> None:
        """Read the reward's earlier name as today's; refuse settings that train nothing."""
        object.__setattr__(self, 'reward', reward_offering(self.reward, RECORDED))
        problems = _below(self, ('image_size', 'width', 'encoder_layers', 'decoder_layers',
                                 'steps', 'batch', 'clip', 'log_every', 'dynamics_steps'), 1)
        problems += _below(self, ('seed',), 0)
        problems += _below(self, ('lr', 'time_limit_min', 'dynamics_time_limit_min'), 0, True)
        if not self.views:
            problems.append('views must name at least one camera view')
        if not 0 <= self.patch_ratio < 1:
            problems.append(f'patch_ratio must be in [0, 1), got {self.patch_ratio}')
        _refuse('train-world-model', problems)


@dataclass(frozen=True)
class HorizonTrainSettings:
    """What the world-model agent trains on and for how long."""

    task: str = setting(help='task to train on, e.g. stack')
    world_model: str = setting(help='world-model run folder (vrl train-world-model)')
    reward: str = setting(PLANNER_STAGES, 'reward to learn')
    env_steps: int = setting(20000, 'environment-step budget (with --resume: the new total)')
    num_envs: int = setting(2, 'worker processes')
    collect_steps: int = setting(50, 'steps per worker between training phases')
    updates: int = setting(25, 'updates per training phase')
    batch: int = setting(16, 'windows per batch')
    length: int = setting(24, 'steps per window')
    bc_steps: int = setting(500, 'behaviour-cloning steps before the first rollout')
    bc_weight: float = setting(1.0, "weight of the behaviour-cloning term in the actor's loss")
    entropy: float = setting(3e-4, 'entropy bonus weight')
    horizon: Optional[int] = setting(
        None, 'imagination horizon (default: the key-horizon, within 5-15)')
    imagine_starts: int = setting(128, 'posterior states imagination starts from per update')
    eval_every: int = setting(10, 'training phases between validation runs')
    eval_episodes: int = setting(10, 'validation episodes')
    eval_seed_start: int = setting(2000, 'first validation seed (as residual RL validates)')
    seed: int = setting(0, 'training seed')
    time_limit_min: Optional[float] = setting(None, 'stop after this many minutes')
    threads: int = setting(1, 'torch threads of the learner (the workers render on the rest)')

    def __post_init__(self) -> None:
        """Read the reward's earlier name as today's; refuse settings that train nothing."""
        object.__setattr__(self, 'reward', reward_offering(self.reward, RECORDED))
        problems = _below(self, ('env_steps', 'num_envs', 'collect_steps', 'updates', 'batch',
                                 'length', 'horizon', 'imagine_starts', 'eval_every',
                                 'eval_episodes', 'threads'), 1)
        problems += _below(self, ('bc_steps', 'bc_weight', 'entropy', 'eval_seed_start',
                                  'seed'), 0)
        problems += _below(self, ('time_limit_min',), 0, True)
        _refuse('train-horizon', problems)
