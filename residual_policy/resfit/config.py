"""
The off-policy residual learner's settings, validated (no torch: the CLI reads them).

:class:`ResFiTConfig` holds the networks' sizes and the learner's
hyper-parameters (ResFiT: a TD3-style residual over a frozen chunking base,
LayerNorm critic ensemble, n-step returns, demonstrations in every batch).
``vrl train-residual --algo resfit`` generates a flag from every field. The
defaults are the best of the settings measured so far
(docs/experiments/resfit.md): they lift a weak pick_place base, and none has
yet improved on the stack and peg_insert bases.
"""

from dataclasses import dataclass

from visual_rl_stack.core.config_dicts import JSONConfig, setting
from visual_rl_stack.residual_policy.resip.config import network_size_problems

#: When online fine-tuning runs its updates (:mod:`.online`): in a thread as data arrives,
#: or all when an episode ends.
UPDATE_MODES = ('background', 'between_episodes')
#: What a demonstration transition's action is (:mod:`.demos`).
DEMO_ACTIONS = ('clipped', 'recorded')
#: ResFiTConfig fields the frozen base decides.
RESFIT_DATA_FIELDS = ('state_dim', 'action_dim')


@dataclass(frozen=True)
class ResFiTConfig(JSONConfig):
    """Networks and hyper-parameters of the off-policy residual learner; JSON-serialisable."""

    state_dim: int = setting(help='width of the state the residual sees (from the base)')
    action_dim: int = setting(help='width of an action (from the base)')
    hidden_dims: tuple[int, ...] = setting((256, 256), 'hidden sizes of the residual actor MLP')
    critic_hidden_dims: tuple[int, ...] = setting(
        (256, 256), 'hidden sizes of each critic MLP (LayerNorm after every hidden layer)')
    residual_scale: float = setting(
        0.1, 'bound of the correction added to the normalised base action (tanh-squashed '
        'residual times this)')
    state_clip: float = setting(3.0, 'clamp of the normalised state the networks see')
    critics: int = setting(2, 'critics in the ensemble')
    target_subset: int = setting(
        2, 'critics whose minimum makes the TD target (a random subset when fewer than all)')
    gamma: float = setting(0.99, 'discount factor per control step')
    n_step: int = setting(3, 'environment steps summed into one TD target')
    tau: float = setting(0.005, 'Polyak rate of the target networks')
    actor_lr: float = setting(
        3e-6, 'actor learning rate (small: Adam moves every weight by about this much per '
        'update, and a fast actor exploits the young critic)')
    critic_lr: float = setting(3e-4, 'critic learning rate')
    batch_size: int = setting(256, 'transitions per gradient update')
    utd: float = setting(2.0, 'critic updates per environment step (update-to-data ratio)')
    actor_delay: int = setting(2, 'critic updates per actor and target-network update')
    exploration_std: float = setting(
        0.5, 'std of the Gaussian noise on the residual (before the scale) while collecting')
    target_noise: float = setting(0.2, 'std of the target-policy smoothing noise (TD3)')
    target_noise_clip: float = setting(0.5, 'clip of the target-policy smoothing noise')
    actor_l2: float = setting(
        0.1, 'weight of the mean squared residual in the actor loss (keeps it near the base)')
    actor_pessimism: float = setting(
        0.0, "the actor climbs the ensemble's mean Q less this times the members' std: "
        'directions the critics disagree on (extrapolation) are not taken; 0: the mean (TD3)')
    buffer_size: int = setting(300_000, 'online transitions kept in the replay buffer')
    demo_ratio: float = setting(
        0.25, 'share of each batch drawn from demonstrations (when demonstrations are given)')
    demo_actions: str = setting(
        'clipped', "a demonstration transition's action: 'clipped' (the recorded one clipped "
        "to the residual's bound, an action the actor can send) or 'recorded' (the one that "
        'reached the next state)')
    warmup_steps: int = setting(
        2_000, 'first environment steps collected by the base alone (residual zero, no updates)')
    critic_warmup_updates: int = setting(
        5_000, 'critic-only updates right after the warm-up, before the actor moves')
    progressive_steps: int = setting(
        0, 'progressive exploration (Policy Decorator): the residual is applied with '
        'probability min(t / N, 1) per episode, t counted after the warm-up; 0: always')
    grad_clip: float = setting(10.0, 'gradient-norm clip of every update')

    def __post_init__(self):
        """Reject settings the learner cannot honour."""
        problems = network_size_problems(self)
        if not 1 <= self.target_subset <= self.critics:
            problems.append('target_subset must be between 1 and critics')
        if not 0 <= self.gamma <= 1:
            problems.append('gamma must be in [0, 1]')
        if not 0 < self.tau <= 1:
            problems.append('tau must be in (0, 1]')
        if not 0 <= self.demo_ratio < 1:
            problems.append('demo_ratio must be in [0, 1)')
        if self.demo_actions not in DEMO_ACTIONS:
            problems.append(f'demo_actions must be one of {", ".join(DEMO_ACTIONS)}')
        for name in ('n_step', 'batch_size', 'actor_delay', 'buffer_size'):
            if getattr(self, name) < 1:
                problems.append(f'{name} must be >= 1')
        for name in ('residual_scale', 'state_clip', 'utd', 'actor_lr', 'critic_lr',
                     'grad_clip'):
            if not getattr(self, name) > 0:
                problems.append(f'{name} must be > 0')
        for name in ('exploration_std', 'target_noise', 'target_noise_clip', 'actor_l2',
                     'actor_pessimism',
                     'warmup_steps', 'critic_warmup_updates', 'progressive_steps'):
            if getattr(self, name) < 0:
                problems.append(f'{name} must be >= 0')
        if problems:
            raise ValueError('invalid ResFiTConfig: ' + '; '.join(problems))

    @property
    def input_dim(self) -> int:
        """Return the width of the actor input: state then base action."""
        return self.state_dim + self.action_dim
