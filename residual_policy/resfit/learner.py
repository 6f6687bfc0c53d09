"""
The off-policy update of the residual (ROS-free: the trainer and the policy node share it).

TD3 over a residual, as ResFiT: the critic ensemble regresses on n-step
targets ``r + discount * min_{random subset} Q'(s', b', b' + scale * pi'(s', b'))``
with clipped smoothing noise on the target action; every ``actor_delay``
critic updates the actor climbs the ensemble's mean Q of its own action
(less ``actor_pessimism`` times the members' spread, where they disagree) and
the target networks follow by Polyak averaging. The first
``critic_warmup_updates`` fit the critic only, so the actor's first steps
follow a critic that already knows the base's values.

Randomness (batch rows, target noise, critic subsets, exploration) comes from
the learner's own generators, saved with it, so a resumed learner makes the
same next update as one that never stopped.
"""

import copy
from typing import Optional

import numpy as np
import torch

from .config import ResFiTConfig
from .networks import combine, CriticEnsemble, ResidualActor
from .replay import ReplayBuffer, sample_mixed


@torch.no_grad()
def residual_action(config: ResFiTConfig, actor: ResidualActor, state_norm: torch.Tensor,
                    base_norm: torch.Tensor, generator: Optional[torch.Generator] = None,
                    use_residual: Optional[torch.Tensor] = None) -> torch.Tensor:
    """
    Return the normalised action ``actor`` sends for ``(state, base action)`` rows.

    With a ``generator`` the residual explores (Gaussian noise of
    ``exploration_std`` drawn from it); ``use_residual`` (a bool per row)
    leaves the rows where it is false to the base alone.
    """
    residual = actor(state_norm, base_norm)
    if generator is not None:
        noise = torch.randn(residual.shape, generator=generator)
        residual = (residual + config.exploration_std * noise).clamp(-1.0, 1.0)
    if use_residual is not None:
        residual = residual * use_residual.to(residual.dtype)[:, None]
    return combine(config, base_norm, residual)


class ResFiTLearner:
    """Actor, critic ensemble, their targets and optimisers, and the update (module doc)."""

    def __init__(self, config: ResFiTConfig, seed: int = 0):
        self.config = config
        self.actor = ResidualActor(config)
        self.critic = CriticEnsemble(config)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.updates = 0
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)

    # Acting ---------------------------------------------------------------------------------

    def act(self, state_norm: torch.Tensor, base_norm: torch.Tensor,
            explore: bool = False, use_residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Return the normalised action to send (:func:`residual_action` with this actor)."""
        return residual_action(self.config, self.actor, state_norm, base_norm,
                               self.generator if explore else None, use_residual)

    # Learning -------------------------------------------------------------------------------

    def sample(self, online: ReplayBuffer,
               demos: Optional[ReplayBuffer]) -> dict[str, torch.Tensor]:
        """Draw one batch (with the configured share of demonstrations) as tensors."""
        batch = sample_mixed(online, demos, self.config.batch_size, self.config.demo_ratio,
                             self.rng)
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    @torch.no_grad()
    def td_target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return the n-step TD target of every row (module doc)."""
        config = self.config
        next_residual = self.actor_target(batch['next_state'], batch['next_base'])
        noise = (torch.randn(next_residual.shape, generator=self.generator)
                 * config.target_noise).clamp(-config.target_noise_clip, config.target_noise_clip)
        next_action = combine(config, batch['next_base'], (next_residual + noise).clamp(-1, 1))
        values = self.critic_target(batch['next_state'], batch['next_base'], next_action)
        subset = torch.randperm(config.critics, generator=self.generator)[:config.target_subset]
        return batch['reward'] + batch['discount'] * values[subset].min(dim=0).values

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Run one critic update, and the actor and target update when due; return stats."""
        config = self.config
        target = self.td_target(batch)
        values = self.critic(batch['state'], batch['base'], batch['action'])
        critic_loss = (values - target).pow(2).mean(dim=1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critic.parameters(), config.grad_clip)
        self.critic_optimizer.step()
        self.updates += 1
        stats = {'critic_loss': float(critic_loss.detach()) / config.critics,
                 'q': float(values.detach().mean()), 'target': float(target.mean())}
        if self.updates % config.actor_delay == 0:
            if self.updates > config.critic_warmup_updates:
                stats.update(self._actor_step(batch))
            self._follow_targets()
        return stats

    def _actor_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Move the actor up the ensemble's mean Q of its own action."""
        config = self.config
        residual = self.actor(batch['state'], batch['base'])
        action = combine(config, batch['base'], residual)
        self.critic.requires_grad_(False)
        values = self.critic(batch['state'], batch['base'], action)
        self.critic.requires_grad_(True)
        q = values.mean(dim=0)
        if config.actor_pessimism > 0 and config.critics > 1:
            q = q - config.actor_pessimism * values.std(dim=0)
        loss = -q.mean() + config.actor_l2 * residual.pow(2).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.actor.parameters(), config.grad_clip)
        self.actor_optimizer.step()
        return {'actor_loss': float(loss.detach()),
                'residual_abs': float(residual.detach().abs().mean())}

    @torch.no_grad()
    def _follow_targets(self) -> None:
        """Polyak-average the target networks toward the trained ones."""
        for net, target in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
            for param, target_param in zip(net.parameters(), target.parameters()):
                target_param.lerp_(param, self.config.tau)

    # Saving ---------------------------------------------------------------------------------

    def training_state(self) -> dict:
        """Return what a resume needs besides the networks' weights (optimisers, RNG)."""
        return {'actor_optimizer': self.actor_optimizer.state_dict(),
                'critic_optimizer': self.critic_optimizer.state_dict(),
                'actor_target': self.actor_target.state_dict(),
                'critic_target': self.critic_target.state_dict(),
                'updates': self.updates,
                'numpy_rng': self.rng.bit_generator.state,
                'torch_generator': self.generator.get_state()}

    def load_training_state(self, state: dict) -> None:
        """Restore :meth:`training_state` output (the weights are loaded separately)."""
        self.actor_optimizer.load_state_dict(state['actor_optimizer'])
        self.critic_optimizer.load_state_dict(state['critic_optimizer'])
        self.actor_target.load_state_dict(state['actor_target'])
        self.critic_target.load_state_dict(state['critic_target'])
        self.updates = int(state['updates'])
        self.rng.bit_generator.state = state['numpy_rng']
        self.generator.set_state(state['torch_generator'])
