"""
The off-policy residual's networks: a bounded deterministic actor and a LayerNorm critic ensemble.

Everything is in the base's normalised units (as in :mod:`..resip.actor_critic`):
the state clamped to ``±state_clip``, the base action of this control step,
and the sent action ``base + residual_scale * tanh(...)``. The actor's last
layer starts at exactly zero (no bias), so before any update the policy *is*
the frozen base. The critics score the sent action together with the state
and the base action; they are one batched module (weights stacked along an
ensemble axis), so ten critics cost one matrix product per layer, not ten.
"""

import math

import torch
from torch import nn

from .config import ResFiTConfig


def clamp_state(config: ResFiTConfig, state_norm: torch.Tensor) -> torch.Tensor:
    """Clamp a normalised state to ``±state_clip`` so outliers cannot saturate the networks."""
    return state_norm.clamp(-config.state_clip, config.state_clip)


def combine(config: ResFiTConfig, base_norm: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """
    Return ``base + residual_scale * residual`` clamped to [-1, 1] or to the base action.

    The clamp never moves the base action itself (a base with an action frame
    can propose an action outside [-1, 1] in a later step's frame), only keeps
    the correction from pushing the sent action out of the demonstrated range.
    """
    summed = base_norm + config.residual_scale * residual
    return summed.clamp(min=base_norm.clamp(max=-1.0), max=base_norm.clamp(min=1.0))


class ResidualActor(nn.Module):
    """Deterministic residual in [-1, 1] from the normalised state and base action."""

    def __init__(self, config: ResFiTConfig):
        super().__init__()
        self.config = config
        layers, width = [], config.input_dim
        for hidden in config.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        head = nn.Linear(width, config.action_dim, bias=False)
        nn.init.zeros_(head.weight)  # residual exactly 0 at the start: the policy is the base
        self.net = nn.Sequential(*layers, head)

    def forward(self, state_norm: torch.Tensor, base_norm: torch.Tensor) -> torch.Tensor:
        """Return the residual ``(..., action_dim)`` in [-1, 1] (before ``residual_scale``)."""
        inputs = torch.cat([clamp_state(self.config, state_norm), base_norm], dim=-1)
        return torch.tanh(self.net(inputs))


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers as one batched product: ``(E, B, in) -> (E, B, out)``."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim))
        bound = 1 / math.sqrt(in_dim)  # nn.Linear's default initialisation, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Apply each member to its slice of ``inputs (E, B, in)``."""
        return torch.baddbmm(self.bias, inputs, self.weight)


class CriticEnsemble(nn.Module):
    """
    ``critics`` Q-functions ``Q(state, base action, sent action)`` with LayerNorm (RLPD).

    The LayerNorms carry no affine parameters, so no weight is shared between members.
    """

    def __init__(self, config: ResFiTConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.state_dim + 2 * config.action_dim
        for hidden in config.critic_hidden_dims:
            layers += [EnsembleLinear(config.critics, width, hidden),
                       nn.LayerNorm(hidden, elementwise_affine=False), nn.ReLU()]
            width = hidden
        layers.append(EnsembleLinear(config.critics, width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, state_norm: torch.Tensor, base_norm: torch.Tensor,
                action_norm: torch.Tensor) -> torch.Tensor:
        """
        Return every critic's value, shape ``(critics, B)``.

        The sent action enters as its correction in residual units,
        ``(action - base) / residual_scale``: the corrections the actor can
        make then span [-1, 1] like the other inputs, where the raw actions
        would differ by hundredths and the critic could hardly tell them apart.
        """
        correction = (action_norm - base_norm) / self.config.residual_scale
        inputs = torch.cat([clamp_state(self.config, state_norm), base_norm, correction], -1)
        inputs = inputs.unsqueeze(0).expand(self.config.critics, *inputs.shape)
        return self.net(inputs).squeeze(-1)
