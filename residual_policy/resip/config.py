"""
What a residual training run does, as validated settings (no torch: the CLI reads them).

:class:`ResidualTrainSettings` is the single definition of the run's settings:
``vrl train-residual`` generates its flags from these fields, so a flag's name,
type, default and help are the field's. The residual network's sizes are
:class:`ResidualConfig` and the PPO update's :class:`PPOConfig`; the command
generates flags from those too.
"""

from dataclasses import dataclass
import math
from typing import Optional

from visual_rl_stack.core.config_dicts import JSONConfig, setting
from visual_rl_stack.core.rewards import canonical_reward, SPARSE

#: Forms of the kagi reward's dense term (see ``ResidualTrainSettings.reward_shaping``).
REWARD_SHAPINGS = ('potential', 'progress')
#: Residual learners: ResiP's PPO and the off-policy ResFiT learner (residual_policy/resfit).
ALGOS = ('ppo', 'resfit')
#: ResidualConfig fields the frozen base decides.
RESIDUAL_DATA_FIELDS = ('state_dim', 'action_dim')


@dataclass(frozen=True)
class ResidualTrainSettings:
    """What a residual run does besides the network and PPO settings; JSON-serialisable."""

    task: str = setting(help='task to train on, e.g. peg_insert')
    base: str = setting(help='frozen base: shipped model name or state-based BC run folder')
    algo: str = setting(
        'ppo', 'learner: ppo (ResiP, on-policy; many parallel envs) or resfit (off-policy '
        'TD3-style residual with a critic ensemble and n-step returns; sample-efficient)')
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
        SPARSE, 'reward function, a name of the reward registry (visual_rl_stack.core.rewards)')
    reward_backend: str = setting(
        'keypoint_net', 'keypoint backend of the kagi reward (vlm_affordance.backends)')
    reward_model: Optional[str] = setting(
        None, 'local model folder of the kagi reward backend (default: none, for a backend '
        'that ships its weights)')
    reward_shaping: str = setting(
        'potential', "dense term of the kagi reward: 'potential' pays gamma * phi(s') - phi(s) "
        "of the waypoint progress phi (PPO's gamma), so hovering short of success earns "
        "nothing; 'progress' pays phi itself every step (the KAGI paper's form), which, with "
        'episodes that end at success, pays more for hovering than for succeeding')
    seed: int = setting(0, 'training seed')
    time_limit_min: Optional[float] = setting(
        None, 'stop this session after N minutes (at an iteration boundary)')
    demos: Optional[str] = setting(
        None, 'folder of demonstration bags mixed into every batch (resfit only; their '
        'successful episodes, relabelled with the sparse reward)')
    init_residual: Optional[str] = setting(
        None, 'start from the residual (actor and critic) of this residual run or shipped '
        'model, trained over the same base and base settings')

    def __post_init__(self) -> None:
        """Read a reward's earlier name (a run folder's, a config's) as today's."""
        object.__setattr__(self, 'reward', canonical_reward(self.reward))

    def check(self) -> None:
        """Raise ValueError listing every setting that cannot work."""
        problems = [f'{name} must be >= 1' for name in
                    ('envs', 'total_steps', 'base_inference_steps', 'eval_every', 'val_episodes')
                    if getattr(self, name) < 1]
        if self.rollout_steps is not None and self.rollout_steps < 1:
            problems.append('rollout_steps must be >= 1')
        if not (math.isfinite(self.base_noise_scale) and self.base_noise_scale >= 0):
            problems.append('base_noise_scale must be a finite number >= 0')
        if self.reward_shaping not in REWARD_SHAPINGS:
            problems.append(f'reward_shaping must be one of {REWARD_SHAPINGS}')
        if self.algo not in ALGOS:
            problems.append(f'algo must be one of {ALGOS}')
        if self.demos is not None and self.algo != 'resfit':
            problems.append('demos are used by the resfit learner only')
        if self.time_limit_min is not None and self.time_limit_min <= 0:
            problems.append('time_limit_min must be > 0')
        if problems:
            raise ValueError('invalid residual training settings: ' + '; '.join(problems))


def network_size_problems(config) -> list[str]:
    """Return what is wrong with a residual config's widths (both residual learners check)."""
    problems = []
    if config.state_dim < 1 or config.action_dim < 1:
        problems.append('state_dim and action_dim must be >= 1')
    if any(d < 1 for d in config.hidden_dims + config.critic_hidden_dims):
        problems.append('hidden sizes must be >= 1')
    return problems


@dataclass(frozen=True)
class ResidualConfig(JSONConfig):
    """Sizes and scales of the residual actor and critic (ResiP defaults); JSON-serialisable."""

    state_dim: int = setting(help='width of the state the residual sees (from the base)')
    action_dim: int = setting(help='width of an action (from the base)')
    hidden_dims: tuple[int, ...] = setting((256, 256), 'hidden sizes of the residual actor MLP')
    residual_scale: float = setting(
        0.1, 'scale of the residual correction added to the normalised base action')
    init_log_std: float = setting(
        -1.0, 'initial log standard deviation of the residual exploration noise')
    learn_log_std: bool = setting(False, 'learn the exploration noise instead of keeping it fixed')
    state_clip: float = setting(3.0, 'clamp of the normalised state the networks see')
    critic_hidden_dims: tuple[int, ...] = setting((256, 256), 'hidden sizes of the critic MLP')

    def __post_init__(self):
        """Reject sizes and scales the networks cannot honour."""
        problems = network_size_problems(self)
        if self.residual_scale <= 0:
            problems.append('residual_scale must be > 0')
        if self.state_clip <= 0:
            problems.append('state_clip must be > 0')
        if problems:
            raise ValueError('invalid ResidualConfig: ' + '; '.join(problems))

    @property
    def input_dim(self) -> int:
        """Return the width of the actor and critic input: state then base action."""
        return self.state_dim + self.action_dim


@dataclass(frozen=True)
class PPOConfig(JSONConfig):
    """PPO hyper-parameters (ResiP defaults); ``target_kl`` None disables early stopping."""

    gamma: float = setting(0.999, 'discount factor')
    gae_lambda: float = setting(0.95, 'GAE lambda')
    clip: float = setting(0.2, 'PPO ratio clip')
    epochs: int = setting(50, 'update epochs over each rollout (stopped early by target_kl)')
    minibatches: int = setting(4, 'minibatches per epoch')
    target_kl: Optional[float] = setting(
        0.1, 'stop an update once the approximate KL exceeds this (none: never)')
    value_coef: float = setting(1.0, 'weight of the value loss')
    entropy_coef: float = setting(0.0, 'weight of the entropy bonus')
    max_grad_norm: float = setting(1.0, 'gradient-norm clip')
    actor_lr: float = setting(3e-4, 'actor learning rate')
    critic_lr: float = setting(5e-3, 'critic learning rate')
    weight_decay: float = setting(1e-6, 'AdamW weight decay')
    adam_eps: float = setting(1e-5, 'AdamW epsilon')
    normalize_advantages: bool = setting(True, 'normalise advantages per minibatch')
    reward_clip: float = setting(5.0, 'clip of the scaled reward')
    critic_warmup_updates: int = setting(0, 'first updates that fit only the critic')

    def __post_init__(self):
        """Reject settings that make the update meaningless."""
        problems = []
        if not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            problems.append('gamma and gae_lambda must be in [0, 1]')
        if self.clip <= 0 or self.max_grad_norm <= 0 or self.reward_clip <= 0:
            problems.append('clip, max_grad_norm and reward_clip must be > 0')
        if self.epochs < 1 or self.minibatches < 1:
            problems.append('epochs and minibatches must be >= 1')
        if self.target_kl is not None and self.target_kl <= 0:
            problems.append('target_kl must be > 0 or None')
        if self.actor_lr <= 0 or self.critic_lr <= 0:
            problems.append('learning rates must be > 0')
        if self.critic_warmup_updates < 0:
            problems.append('critic_warmup_updates must be >= 0')
        if problems:
            raise ValueError('invalid PPOConfig: ' + '; '.join(problems))

    def trains_actor(self, updates_done: int) -> bool:
        """
        Return whether update number ``updates_done`` (from 0) may change the actor.

        The first ``critic_warmup_updates`` fit only the critic: advantages from
        an untrained critic are noise, and an actor step on them moves a good
        base policy away from what it already does well.
        """
        return updates_done >= self.critic_warmup_updates
