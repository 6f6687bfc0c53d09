"""
PPO pieces for the ResiP residual actor: reward scaling, GAE and the clipped update.

Conventions shared by every function here, for rollouts of T steps over N
parallel environments stored as ``(T, N)`` tensors:

- ``dones[t]`` is 1 when observation ``t`` starts a new episode, i.e. the
  step before it ended one; ``last_done`` is the same flag for the
  observation after the rollout. Step ``t`` bootstraps from ``values[t + 1]``
  (or ``last_value``) only when that next observation continues its episode.
- Log-probabilities are summed over action dimensions and refer to the raw
  residual sampled by :meth:`ResidualActor.act`.

The update follows ResiP: many epochs (50) over the same batch, stopped early
once the policy has drifted by more than ``target_kl`` from the one that
collected the data, with separate AdamW optimisers because the critic learns
an order of magnitude faster than the actor.
"""

from typing import Mapping, NamedTuple, Optional, Union

import numpy as np
import torch

from .actor_critic import Critic, ResidualActor
from .config import PPOConfig

#: Keys :func:`ppo_update` reads; vector entries have a trailing feature axis.
BATCH_KEYS = ('states', 'base_actions', 'residuals', 'log_probs', 'values', 'advantages',
              'returns')
_VECTOR_KEYS = ('states', 'base_actions', 'residuals')


class RunningMeanStd:
    """Running mean and variance of a stream of batches (parallel Welford / Chan update)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        # A tiny pseudo-count with variance 1 keeps the first divisions finite.
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch of shape ``(B, *shape)`` into the running statistics."""
        batch = np.asarray(batch, dtype=np.float64).reshape((-1,) + self.mean.shape)
        batch_count = batch.shape[0]
        if batch_count == 0:
            return
        batch_mean, batch_var = batch.mean(axis=0), batch.var(axis=0)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        m2 = (self.var * self.count + batch_var * batch_count
              + delta ** 2 * self.count * batch_count / total)
        self.mean = self.mean + delta * batch_count / total
        self.var = m2 / total
        self.count = total


class RewardNormalizer:
    """
    Divide rewards by the running std of each environment's discounted return.

    This is the "reward scaling" of single-file PPO implementations: the
    return ``G <- gamma * G + r`` is tracked per environment and its running
    variance sets the scale, so value targets stay O(1) whatever the reward
    magnitude, while the mean is not subtracted (that would change which
    behaviour is rewarded). Returns restart at zero when an episode ends.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float, epsilon: float = 1e-8):
        self.gamma = float(gamma)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.return_rms = RunningMeanStd()

    def __call__(self, rewards: Union[np.ndarray, torch.Tensor],
                 dones: Union[np.ndarray, torch.Tensor]) -> Union[np.ndarray, torch.Tensor]:
        """
        Scale one step's rewards ``(N,)``; ``dones`` marks episodes that ended at this step.

        Returns the same array type (and torch device) as ``rewards``, clipped
        to ``±clip``; floating dtypes are kept, integer rewards come back float32.
        """
        raw = _to_numpy(rewards)
        self.returns = self.returns * self.gamma + raw
        self.return_rms.update(self.returns)
        self.returns[_to_numpy(dones).astype(bool)] = 0.0
        scaled = np.clip(raw / np.sqrt(self.return_rms.var + self.epsilon), -self.clip, self.clip)
        if isinstance(rewards, torch.Tensor):
            dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
            return torch.as_tensor(scaled, dtype=dtype, device=rewards.device)
        return scaled.astype(raw.dtype if np.issubdtype(raw.dtype, np.floating) else np.float32)


def _to_numpy(x: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """Return ``x`` as a numpy array (a CPU copy for tensors)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                last_value: torch.Tensor, last_done: torch.Tensor, gamma: float,
                lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Return ``(advantages, returns)``, both ``(T, N)``, by generalised advantage estimation.

    ``dones`` follows the module convention (observation ``t`` starts a new
    episode), so a step whose successor starts an episode neither bootstraps
    from nor accumulates advantages across the boundary.
    ``returns = advantages + values`` are the critic's targets.
    """
    dones = dones.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(last_value, dtype=rewards.dtype)
    next_value = last_value.to(rewards.dtype)
    next_nonterminal = 1.0 - last_done.to(rewards.dtype)
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * next_value * next_nonterminal - values[t]
        next_advantage = delta + gamma * lam * next_nonterminal * next_advantage
        advantages[t] = next_advantage
        next_value, next_nonterminal = values[t], 1.0 - dones[t]
    return advantages, advantages + values


class Optimizers(NamedTuple):
    """The actor's and the critic's optimisers; separate so each has its own learning rate."""

    actor: torch.optim.Optimizer
    critic: torch.optim.Optimizer


def make_optimizers(actor: ResidualActor, critic: Critic, config: PPOConfig) -> Optimizers:
    """Build AdamW for each network over its trainable parameters (a fixed log-std is left out)."""
    def adamw(module: torch.nn.Module, lr: float) -> torch.optim.AdamW:
        params = [p for p in module.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=lr, eps=config.adam_eps,
                                 weight_decay=config.weight_decay)
    return Optimizers(adamw(actor, config.actor_lr), adamw(critic, config.critic_lr))


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Return ``1 - Var(target - predicted) / Var(target)``; NaN when the target is constant."""
    target_var = target.var(unbiased=False)
    if target_var == 0:
        return float('nan')
    return float(1 - (target - predicted).var(unbiased=False) / target_var)


def ppo_update(actor: ResidualActor, critic: Critic, optimizers: Optimizers,
               batch: Mapping[str, torch.Tensor], config: PPOConfig,
               generator: Optional[torch.Generator] = None,
               train_actor: bool = True) -> dict[str, float]:
    """
    Run up to ``config.epochs`` epochs of clipped-surrogate PPO on one rollout batch.

    ``batch`` holds :data:`BATCH_KEYS` with any leading shape (e.g. ``(T, N)``),
    flattened here. Each epoch shuffles into ``config.minibatches``
    minibatches; each minibatch normalises its advantages (if configured),
    steps both optimisers on ``policy + value_coef * value - entropy_coef *
    entropy`` with each network's gradient norm clipped separately. After each
    epoch the approximate KL ``E[(ratio - 1) - log ratio]`` over the whole
    batch is measured and the update stops once it exceeds ``target_kl``.

    Returns means over minibatches of the losses, entropy and clip fraction,
    plus the final ``approx_kl``, ``epochs`` run, ``early_stopped`` and
    ``actor_trained`` (0 or 1) and the ``explained_variance`` of the rollout values.

    With ``train_actor`` False (critic warm-up) only the critic is stepped,
    on the value loss alone; the actor, and so the KL, stay unchanged.
    """
    data = _flatten_batch(batch)
    size = data['advantages'].shape[0]
    totals = {'policy_loss': 0.0, 'value_loss': 0.0, 'entropy': 0.0, 'clip_fraction': 0.0}
    steps = epochs = 0
    approx_kl, early_stopped = 0.0, False
    for _ in range(config.epochs):
        order = torch.randperm(size, generator=generator).to(data['advantages'].device)
        for index in torch.tensor_split(order, config.minibatches):
            if index.numel():
                step_stats = _minibatch_step(actor, critic, optimizers,
                                             {k: v[index] for k, v in data.items()}, config,
                                             train_actor)
                for key, value in step_stats.items():
                    totals[key] += value
                steps += 1
        epochs += 1
        approx_kl = _approx_kl(actor, data)
        if config.target_kl is not None and approx_kl > config.target_kl:
            early_stopped = True
            break
    stats = {key: value / max(steps, 1) for key, value in totals.items()}
    stats.update(approx_kl=approx_kl, epochs=float(epochs), early_stopped=float(early_stopped),
                 actor_trained=float(train_actor),
                 explained_variance=explained_variance(data['values'], data['returns']))
    return stats


def _flatten_batch(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check the keys and flatten every leading axis into one sample axis."""
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f'PPO batch lacks {", ".join(missing)}')
    size = batch['advantages'].numel()
    data = {}
    for key in BATCH_KEYS:
        value = batch[key].detach()
        data[key] = value.reshape(size, -1) if key in _VECTOR_KEYS else value.reshape(size)
    return data


def _minibatch_step(actor: ResidualActor, critic: Critic, optimizers: Optimizers,
                    mb: Mapping[str, torch.Tensor], config: PPOConfig,
                    train_actor: bool) -> dict[str, float]:
    """Take one optimiser step for each trained network on a minibatch; return its losses."""
    dist = actor.distribution(mb['states'], mb['base_actions'])
    log_ratio = dist.log_prob(mb['residuals']).sum(-1) - mb['log_probs']
    ratio = log_ratio.exp()
    advantages = mb['advantages']
    if config.normalize_advantages and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    clipped_ratio = ratio.clamp(1 - config.clip, 1 + config.clip)
    policy_loss = torch.max(-advantages * ratio, -advantages * clipped_ratio).mean()
    value_loss = (critic(mb['states'], mb['base_actions']) - mb['returns']).pow(2).mean()
    entropy = dist.entropy().sum(-1).mean()
    loss = config.value_coef * value_loss
    if train_actor:
        loss = loss + policy_loss - config.entropy_coef * entropy
    stepped = optimizers if train_actor else (optimizers.critic,)
    for optimizer in stepped:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in stepped:
        params = [p for group in optimizer.param_groups for p in group['params']]
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
    clip_fraction = ((ratio - 1).abs() > config.clip).float().mean()
    return {'policy_loss': policy_loss.item(), 'value_loss': value_loss.item(),
            'entropy': entropy.item(), 'clip_fraction': clip_fraction.item()}


@torch.no_grad()
def _approx_kl(actor: ResidualActor, data: Mapping[str, torch.Tensor]) -> float:
    """Return the low-variance KL estimate ``E[(ratio - 1) - log ratio]`` of old to current."""
    dist = actor.distribution(data['states'], data['base_actions'])
    log_ratio = dist.log_prob(data['residuals']).sum(-1) - data['log_probs']
    return float(((log_ratio.exp() - 1) - log_ratio).mean())
