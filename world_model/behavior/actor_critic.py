"""
The actor and critic over RSSM features, trained in imagination (Dreamer-style).

From posterior states of real windows the actor's actions drive the RSSM's
prior for ``horizon`` steps (RoboHorizon ties it to the demonstrations'
key-horizon); the reward and continuation heads score the imagined states.
The actor maximises the lambda-returns by backpropagating through the
dynamics, with an entropy bonus and a behaviour-cloning term (squared error
of its mean action to the demonstrator's on demonstration windows). Returns
are divided by their running 5-95 % spread (at least 1, DreamerV3), so one
entropy weight suits dense and sparse rewards. The critic regresses the
returns, which bootstrap from a slowly updated copy of it.
"""

import copy
from dataclasses import asdict, dataclass
import math

import torch
from torch import nn

from .returns import lambda_returns
from ..dynamics.rssm import mlp, RSSM, stack_states, State


@dataclass(frozen=True)
class BehaviorConfig:
    """Sizes and weights of the actor-critic."""

    feature_size: int
    action_size: int = 7
    hidden: int = 256
    horizon: int = 15
    gamma: float = 0.99
    lam: float = 0.95
    entropy: float = 3e-4
    bc_weight: float = 1.0
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    target_mix: float = 0.02
    min_std: float = 0.05
    max_std: float = 1.0
    #: Exploration noise (pre-tanh) of the untrained actor: small, around the cloned mean.
    init_std: float = 0.3

    def __post_init__(self) -> None:
        """Refuse settings without a trajectory or a meaningful return."""
        if self.horizon < 1 or not 0 < self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError(f'need horizon >= 1, gamma in (0, 1], lam in [0, 1]: {self}')
        if min(self.entropy, self.bc_weight) < 0 or not (
                0 < self.min_std < self.init_std < self.max_std):
            raise ValueError(f'weights must be >= 0 and 0 < min_std < init_std < max_std: {self}')

    def to_dict(self) -> dict:
        """Return the config as JSON-ready data."""
        return asdict(self)


class Actor(nn.Module):
    """A tanh-squashed Gaussian policy over normalised delta actions."""

    def __init__(self, config: BehaviorConfig):
        """Build the MLP from ``config``."""
        super().__init__()
        self.config = config
        self.net = mlp(config.feature_size, config.hidden, 2 * config.action_size)

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the pre-tanh mean and standard deviation."""
        c = self.config
        mean, raw = self.net(features).chunk(2, -1)
        std = c.min_std + (c.max_std - c.min_std) * torch.sigmoid(raw + self.std_offset)
        return mean, std

    @property
    def std_offset(self) -> float:
        """Return the logit at which a zero output gives ``init_std``."""
        c = self.config
        fraction = (c.init_std - c.min_std) / (c.max_std - c.min_std)
        return math.log(fraction / (1 - fraction))

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a reparameterised action in (-1, 1) and the entropy of its Gaussian."""
        mean, std = self.distribution(features)
        action = torch.tanh(mean + std * torch.randn_like(std))
        entropy = (torch.log(std) + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
        return action, entropy

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        """Return the deterministic action (tanh of the mean)."""
        return torch.tanh(self.distribution(features)[0])


class Critic(nn.Module):
    """The value of an RSSM state under the actor."""

    def __init__(self, config: BehaviorConfig):
        """Build the MLP from ``config``."""
        super().__init__()
        self.net = mlp(config.feature_size, config.hidden, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return one value per state."""
        return self.net(features).squeeze(-1)


class AgentNets(nn.Module):
    """The actor and critic saved together (the agent's checkpoint)."""

    def __init__(self, config: BehaviorConfig):
        """Build both from ``config``."""
        super().__init__()
        self.config = config
        self.actor, self.critic = Actor(config), Critic(config)


def imagine(rssm: RSSM, actor: Actor, start: State, horizon: int
            ) -> tuple[State, torch.Tensor, torch.Tensor]:
    """
    Roll the prior ``horizon`` steps from ``start`` with the actor's actions.

    Returns the ``(H + 1) x N`` states (start first), the ``H x N x A``
    actions and the ``H x N`` entropies.
    """
    states, actions, entropies = [start], [], []
    for _ in range(horizon):
        action, entropy = actor.sample(states[-1].features.detach())
        states.append(rssm.img_step(states[-1], action))
        actions.append(action)
        entropies.append(entropy)
    return stack_states(states, dim=0), torch.stack(actions), torch.stack(entropies)


class ActorCritic:
    """Trains :class:`AgentNets` in the RSSM's imagination (module doc)."""

    def __init__(self, nets: AgentNets):
        """Set up optimisers and the slow critic."""
        self.nets, c = nets, nets.config
        self.target = copy.deepcopy(nets.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(nets.actor.parameters(), lr=c.actor_lr, eps=1e-5)
        self.critic_opt = torch.optim.Adam(nets.critic.parameters(), lr=c.critic_lr, eps=1e-5)
        self.return_scale = 1.0

    def bc_loss(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Return the mean squared error of the actor's mean action to the demonstrator's."""
        return ((self.nets.actor.mode(features) - actions) ** 2).sum(-1).mean()

    def update(self, rssm: RSSM, start: State, demo_features: torch.Tensor,
               demo_actions: torch.Tensor) -> dict[str, float]:
        """Take one actor and one critic step from ``start`` states; return the metrics."""
        c = self.nets.config
        rssm.requires_grad_(False)
        try:
            states, _, entropies = imagine(rssm, self.nets.actor, start.detach(), c.horizon)
            features = states.features
            rewards, logits = rssm.predict(features[1:])
            continues = torch.sigmoid(logits)
            values = self.target(features)
            returns = lambda_returns(rewards, values, continues, c.gamma, c.lam)
            # Later steps count less: the episode may have ended before them.
            weights = torch.cumprod(torch.cat([torch.ones_like(continues[:1]),
                                               c.gamma * continues[:-1]]), 0).detach()
            spread = torch.quantile(returns.detach().flatten(), torch.tensor([0.05, 0.95]))
            self.return_scale = 0.99 * self.return_scale + 0.01 * float(spread[1] - spread[0])
            scale = max(1.0, self.return_scale)
            objective = (weights * returns / scale).mean()
            entropy = (weights * entropies).mean()
            bc = self.bc_loss(demo_features, demo_actions)
            actor_loss = -objective - c.entropy * entropy + c.bc_weight * bc
            self.actor_opt.zero_grad()
            actor_loss.backward()
            nn.utils.clip_grad_norm_(self.nets.actor.parameters(), 100.0)
            self.actor_opt.step()
        finally:
            rssm.requires_grad_(True)
        value = self.nets.critic(features[:-1].detach())
        critic_loss = (weights * (value - returns.detach()) ** 2).mean()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.nets.critic.parameters(), 100.0)
        self.critic_opt.step()
        with torch.no_grad():
            for slow, fast in zip(self.target.parameters(), self.nets.critic.parameters()):
                slow.lerp_(fast, c.target_mix)
        return {'imagined_return': float(returns[0].mean().detach()), 'imagined_reward':
                float(rewards.mean().detach()), 'actor_loss': float(actor_loss.detach()),
                'critic_loss': float(critic_loss.detach()), 'bc': float(bc.detach()),
                'entropy': float(entropy.detach()), 'return_scale': scale}

    def bc_update(self, demo_features: torch.Tensor, demo_actions: torch.Tensor) -> float:
        """Take one behaviour-cloning step only (the actor's warm start); return the loss."""
        loss = self.bc_loss(demo_features, demo_actions)
        self.actor_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()
        return float(loss.detach())
