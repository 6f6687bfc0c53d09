"""
The recurrent state-space model (PlaNet / Dreamer) over frozen MAE features.

The state is a deterministic GRU path ``h`` and a Gaussian stochastic part
``z``. The prior ``p(z_t | h_t)`` predicts from the past alone; the posterior
``q(z_t | h_t, e_t)`` also sees the step's embedding ``e_t`` (the MAE's
per-view features and the proprioception, normalised). Heads on ``[h, z]``
rebuild the embedding, predict the reward and whether the episode goes on.
KL balancing (DreamerV2) trains the prior towards the posterior faster than
the posterior towards the prior, and free nats stop the KL from collapsing
the latent before the heads have learned anything.
"""

from dataclasses import asdict, dataclass
from typing import NamedTuple, Optional

import torch
from torch import nn
import torch.nn.functional as F

#: The RSSM's checkpoint folder in a world-model run, and its checkpoint kind.
RSSM_DIR, RSSM_KIND = 'rssm', 'world_model_rssm'


@dataclass(frozen=True)
class RSSMConfig:
    """Sizes and loss weights of an RSSM."""

    embed_size: int
    action_size: int = 7
    deter: int = 200
    stoch: int = 32
    hidden: int = 200
    min_std: float = 0.1
    kl_balance: float = 0.8
    kl_scale: float = 1.0
    free_nats: float = 1.0
    reward_scale: float = 1.0
    continue_scale: float = 1.0

    def __post_init__(self) -> None:
        """Refuse sizes and weights that build no model or a meaningless loss."""
        if min(self.embed_size, self.action_size, self.deter, self.stoch, self.hidden) < 1:
            raise ValueError(f'RSSM sizes must be positive, got {self}')
        if not 0.0 <= self.kl_balance <= 1.0 or self.min_std <= 0:
            raise ValueError('kl_balance must be in [0, 1] and min_std positive')

    @property
    def feature_size(self) -> int:
        """Return the size of ``[h, z]``, what heads, actor and critic read."""
        return self.deter + self.stoch

    def to_dict(self) -> dict:
        """Return the config as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'RSSMConfig':
        """Rebuild a config written by :meth:`to_dict`."""
        return cls(**data)


class State(NamedTuple):
    """A batch of RSSM states: deterministic ``h``, stochastic ``z`` and z's distribution."""

    deter: torch.Tensor
    stoch: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def features(self) -> torch.Tensor:
        """Return ``[h, z]``."""
        return torch.cat([self.deter, self.stoch], -1)

    def detach(self) -> 'State':
        """Return the state cut from the graph."""
        return State(*(t.detach() for t in self))


def stack_states(states: list[State], dim: int = 1) -> State:
    """Stack per-step states along ``dim`` (time)."""
    return State(*(torch.stack(parts, dim) for parts in zip(*states)))


def mlp(inputs: int, hidden: int, outputs: int, layers: int = 2) -> nn.Sequential:
    """Return an ELU MLP with ``layers`` hidden layers and layer norm."""
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(inputs if i == 0 else hidden, hidden), nn.LayerNorm(hidden),
                  nn.ELU()]
    parts.append(nn.Linear(hidden, outputs))
    return nn.Sequential(*parts)


def gaussian_kl(mean_a: torch.Tensor, std_a: torch.Tensor, mean_b: torch.Tensor,
                std_b: torch.Tensor) -> torch.Tensor:
    """Return KL(N(a) || N(b)) summed over the last dimension."""
    ratio = (std_a / std_b) ** 2
    return 0.5 * (ratio + ((mean_b - mean_a) / std_b) ** 2 - 1.0 - torch.log(ratio)).sum(-1)


class RSSM(nn.Module):
    """Filters embeddings into states, imagines ahead with the prior, and scores both."""

    def __init__(self, config: RSSMConfig):
        """Build the transition, the posterior and the heads from ``config``."""
        super().__init__()
        self.config = c = config
        self.embed_in = nn.Sequential(nn.Linear(c.embed_size, c.hidden), nn.LayerNorm(c.hidden),
                                      nn.ELU())
        self.action_in = nn.Sequential(nn.Linear(c.stoch + c.action_size, c.hidden),
                                       nn.LayerNorm(c.hidden), nn.ELU())
        self.cell = nn.GRUCell(c.hidden, c.deter)
        self.prior_net = mlp(c.deter, c.hidden, 2 * c.stoch, layers=1)
        self.posterior_net = mlp(c.deter + c.hidden, c.hidden, 2 * c.stoch, layers=1)
        self.embed_head = mlp(c.feature_size, c.hidden, c.embed_size)
        self.reward_head = mlp(c.feature_size, c.hidden, 1)
        self.continue_head = mlp(c.feature_size, c.hidden, 1)

    def initial(self, batch: int) -> State:
        """Return the zero state every episode starts from."""
        c = self.config
        zeros = torch.zeros(batch, c.stoch, device=self.cell.weight_hh.device)
        return State(torch.zeros(batch, c.deter, device=zeros.device), zeros, zeros,
                     torch.ones_like(zeros))

    def _distribution(self, net: nn.Module, inputs: torch.Tensor,
                      deter: torch.Tensor, sample: bool) -> State:
        """Return the state with z drawn from (or at the mean of) ``net``'s Gaussian."""
        mean, raw = net(inputs).chunk(2, -1)
        std = F.softplus(raw) + self.config.min_std
        stoch = mean + std * torch.randn_like(std) if sample else mean
        return State(deter, stoch, mean, std)

    def img_step(self, state: State, action: torch.Tensor, sample: bool = True) -> State:
        """Return the prior state one step after ``state`` under ``action``."""
        deter = self.cell(self.action_in(torch.cat([state.stoch, action], -1)), state.deter)
        return self._distribution(self.prior_net, deter, deter, sample)

    def obs_step(self, state: State, action: torch.Tensor, embed: torch.Tensor,
                 sample: bool = True) -> tuple[State, State]:
        """Return (posterior, prior) of the next step given its embedding."""
        prior = self.img_step(state, action, sample)
        posterior = self._distribution(
            self.posterior_net, torch.cat([prior.deter, self.embed_in(embed)], -1),
            prior.deter, sample)
        return posterior, prior

    def observe(self, embeds: torch.Tensor, prev_actions: torch.Tensor,
                state: Optional[State] = None) -> tuple[State, State]:
        """
        Filter ``B x T`` sequences; return (posteriors, priors) stacked over time.

        ``prev_actions[:, t]`` is the action taken before step t (zero at an
        episode's start); a window starts from :meth:`initial` unless
        ``state`` is given.
        """
        state = self.initial(embeds.shape[0]) if state is None else state
        posteriors, priors = [], []
        for t in range(embeds.shape[1]):
            state, prior = self.obs_step(state, prev_actions[:, t], embeds[:, t])
            posteriors.append(state)
            priors.append(prior)
        return stack_states(posteriors), stack_states(priors)

    def predict(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (reward, continuation logit) of arriving in states with ``features``."""
        return (self.reward_head(features).squeeze(-1),
                self.continue_head(features).squeeze(-1))

    def kl_loss(self, posterior: State, prior: State) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (the balanced KL loss with free nats, the mean KL itself)."""
        c = self.config
        post_sg, prior_sg = posterior.detach(), prior.detach()
        towards_prior = gaussian_kl(post_sg.mean, post_sg.std, prior.mean, prior.std)
        towards_post = gaussian_kl(posterior.mean, posterior.std, prior_sg.mean, prior_sg.std)
        free = torch.tensor(c.free_nats)
        loss = (c.kl_balance * torch.maximum(towards_prior.mean(), free)
                + (1.0 - c.kl_balance) * torch.maximum(towards_post.mean(), free))
        return loss, towards_prior.mean().detach()

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], State]:
        """
        Return the negative ELBO's terms on a ``B x T`` batch and the posteriors.

        The batch is :meth:`.sequences.SequenceBuffer.sample`'s. The reward and
        continuation of action t are predicted from the prior one step after
        the posterior at t, the state imagination will be in, so the last
        action of an episode (the one that succeeds) is learned without an
        observation after it.
        """
        c = self.config
        posterior, prior = self.observe(batch['embeds'], batch['prev_actions'])
        embed_loss = ((self.embed_head(posterior.features) - batch['embeds']) ** 2).sum(-1).mean()
        flat = State(*(part.flatten(0, 1) for part in posterior))
        after = self.img_step(flat, batch['actions'].flatten(0, 1))
        reward, logit = self.predict(after.features)
        reward_loss = ((reward - batch['rewards'].flatten()) ** 2).mean()
        continue_loss = F.binary_cross_entropy_with_logits(logit, batch['continues'].flatten())
        kl, kl_value = self.kl_loss(posterior, prior)
        loss = (embed_loss + c.reward_scale * reward_loss + c.continue_scale * continue_loss
                + c.kl_scale * kl)
        return {'loss': loss, 'embed': embed_loss.detach(), 'reward': reward_loss.detach(),
                'continue': continue_loss.detach(), 'kl': kl_value}, posterior

    def reset_reward_head(self) -> None:
        """Draw the reward head afresh (an agent trained on another reward than the model's)."""
        for layer in self.reward_head:
            if hasattr(layer, 'reset_parameters'):
                layer.reset_parameters()
