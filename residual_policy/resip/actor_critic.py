"""
ResiP residual actor and critic: a small Gaussian policy that corrects a frozen base policy.

The frozen diffusion policy proposes an action chunk that runs open loop; the
residual actor looks at the current state and the base action of this control
step and adds a correction every step, closing the loop. Everything here works
in normalised units: states are min-max normalised and clamped to
``±state_clip`` (so out-of-range observations cannot saturate the MLP), base
actions lie in [-1, 1] (in the frame they were planned in), and the action sent is
``base + residual_scale * residual``, clamped to [-1, 1] (or to the base
action where that lies outside), before denormalising.
The small ``residual_scale`` keeps exploration noise and early, poorly trained
corrections within a narrow band around the demonstrated behaviour.
"""

import torch
from torch import nn
from torch.distributions import Normal

from .config import ResidualConfig


def _mlp(in_dim: int, hidden_dims: tuple[int, ...], out_dim: int, out_gain: float,
         out_bias: bool) -> nn.Sequential:
    """
    Build Linear-ReLU layers then a linear head, all orthogonally initialised.

    Hidden layers use gain sqrt(2) (the usual choice for ReLU in PPO) and zero
    biases; the head's gain and bias are the caller's, because the actor and
    critic heads need different starting outputs.
    """
    layers = []
    for width in hidden_dims:
        layer = nn.Linear(in_dim, width)
        nn.init.orthogonal_(layer.weight, gain=2 ** 0.5)
        nn.init.zeros_(layer.bias)
        layers += [layer, nn.ReLU()]
        in_dim = width
    head = nn.Linear(in_dim, out_dim, bias=out_bias)
    nn.init.orthogonal_(head.weight, gain=out_gain)
    if out_bias:
        nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


def network_input(config: ResidualConfig, state_norm: torch.Tensor,
                  base_action_norm: torch.Tensor) -> torch.Tensor:
    """Concatenate the state clamped to ``±state_clip`` with the per-step base action."""
    state = state_norm.clamp(-config.state_clip, config.state_clip)
    return torch.cat([state, base_action_norm.to(state.dtype)], dim=-1)


class ResidualActor(nn.Module):
    """Gaussian policy over the raw residual, given the normalised state and base action."""

    def __init__(self, config: ResidualConfig):
        super().__init__()
        self.config = config
        # Gain 0 and no bias: the residual is exactly zero for every input, so
        # the combined policy starts as the frozen base and RL only refines it.
        self.mean_net = _mlp(config.input_dim, config.hidden_dims, config.action_dim,
                             out_gain=0.0, out_bias=False)
        # State independent, and fixed by default: ResiP keeps exploration noise
        # constant rather than letting PPO collapse or inflate it.
        self.log_std = nn.Parameter(torch.full((config.action_dim,), config.init_log_std),
                                    requires_grad=config.learn_log_std)

    def forward(self, state_norm: torch.Tensor, base_action_norm: torch.Tensor) -> torch.Tensor:
        """Return the mean residual, shape ``(..., action_dim)``."""
        return self.mean_net(network_input(self.config, state_norm, base_action_norm))

    def distribution(self, state_norm: torch.Tensor,
                     base_action_norm: torch.Tensor) -> Normal:
        """Return the per-dimension Normal over the raw (unscaled) residual."""
        mean = self(state_norm, base_action_norm)
        return Normal(mean, self.log_std.exp().expand_as(mean))

    @torch.no_grad()
    def act(self, state_norm: torch.Tensor, base_action_norm: torch.Tensor,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Pick a residual for a rollout step, without building a graph.

        Returns ``(residual, log_prob)``: a sample (or the mean when
        ``deterministic``, as used for evaluation) and its log-probability
        summed over action dimensions, which PPO needs as the old log-prob.
        """
        dist = self.distribution(state_norm, base_action_norm)
        residual = dist.mean if deterministic else dist.sample()
        return residual, dist.log_prob(residual).sum(-1)

    def combine(self, base_action_norm: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """
        Return ``base + residual_scale * residual`` clamped to [-1, 1] or to the base action.

        The clamp keeps the correction from pushing the sent action out of the
        demonstrated range, but never moves the base action itself: a base
        with an action frame plans in the frame of its chunk's first state,
        and seen in the frame of a later step (near a target the facing
        direction turns fast) its action can lie outside [-1, 1]. The
        log-probability stays that of the raw residual, which PPO optimises.
        """
        summed = base_action_norm + self.config.residual_scale * residual
        return summed.clamp(min=base_action_norm.clamp(max=-1.0),
                            max=base_action_norm.clamp(min=1.0))


class Critic(nn.Module):
    """State-value estimate from the same input as the actor, in a separate network."""

    def __init__(self, config: ResidualConfig):
        super().__init__()
        self.config = config
        # Separate from the actor so the high critic learning rate and value
        # targets never disturb the residual's features.
        self.net = _mlp(config.input_dim, config.critic_hidden_dims, 1, out_gain=1.0,
                        out_bias=True)

    def forward(self, state_norm: torch.Tensor, base_action_norm: torch.Tensor) -> torch.Tensor:
        """Return the value, shape ``(...)``."""
        return self.net(network_input(self.config, state_norm, base_action_norm)).squeeze(-1)
