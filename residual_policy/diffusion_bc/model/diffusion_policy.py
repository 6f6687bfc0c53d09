"""
Diffusion behaviour-cloning policy: observation encoder + 1-D U-Net + diffusers schedulers.

The policy owns its normalisers: ``compute_loss`` and ``predict_action_chunk``
take raw arrays (state, actions in robot units; images uint8) and normalise
internally, so callers never handle normalised values. Training adds noise
with a ``DDPMScheduler``; inference samples with a ``DDIMScheduler`` built from
the same settings, with the step count chosen per call (16 for evaluation,
4 inside RL). Sampled chunks are clipped to the normalised bounds [-1, 1]
before denormalising, so actions never leave the demonstrated range.

EMA: :func:`create_ema` tracks an exponential moving average of the
parameters (diffusers ``EMAModel``, warm-up power 0.75, decay at most 0.9999);
call ``ema.step(policy.parameters())`` after each optimiser step and evaluate
or save inside ``with ema_weights(policy, ema):``, which swaps the averaged
weights in and restores the training weights on exit. Checkpoints therefore
hold the EMA weights when saved inside that block.
"""

from contextlib import contextmanager
import os
from typing import Iterator, Mapping, Optional, Union

from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.training_utils import EMAModel
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F
from visual_rl_stack.core.checkpoints import load_checkpoint, save_checkpoint
from visual_rl_stack.core.devices import autocast_context

from .action_frame import ActionFrame
from .config import DiffusionPolicyConfig
from .encoders import MultiViewImageEncoder, ObservationEncoder, StateEncoder
from .normalization import MinMaxNormalizer
from .state_features import StateFeatures
from .unet1d import ConditionalUnet1D

CHECKPOINT_KIND = 'diffusion_policy'
Batch = Mapping[str, Union[np.ndarray, torch.Tensor]]


def state_features_for(config: DiffusionPolicyConfig) -> StateFeatures:
    """Return the feature map from the config's raw state to the state encoder's input."""
    labels = config.state_labels or (('state', config.state_dim),)
    return StateFeatures(labels, config.state_features)


def action_frame_for(config: DiffusionPolicyConfig) -> Optional[ActionFrame]:
    """Return the frame the policy's actions are learnt in, or None for world coordinates."""
    if not config.action_frame:
        return None
    labels = config.state_labels or (('state', config.state_dim),)
    return ActionFrame(labels, config.action_frame, config.action_dim)


def fit_normalizers(config: DiffusionPolicyConfig, actions: np.ndarray,
                    states: Optional[np.ndarray] = None) -> dict[str, MinMaxNormalizer]:
    """
    Fit the action (and state-feature) normalisers a policy needs from demonstrations.

    ``actions (N, A)`` and ``states (N, S)`` are per step; with an action frame
    the action statistics are those of the actions seen in each step's frame.
    """
    frame = action_frame_for(config)
    if frame is not None and states is None:
        raise ValueError('a policy with an action_frame needs the states to fit its actions')
    state_tensor = None if states is None else torch.as_tensor(np.asarray(states, np.float32))
    if frame is not None:
        actions = frame.to_frame(torch.as_tensor(np.asarray(actions, np.float32)),
                                 frame.heading(state_tensor)).numpy()
    normalizers = {'action': MinMaxNormalizer.fit(actions)}
    if state_tensor is not None:
        normalizers['state'] = MinMaxNormalizer.fit(
            state_features_for(config)(state_tensor).numpy())
    return normalizers


class DiffusionPolicy(nn.Module):
    """Predict chunks of ``horizon`` actions from ``n_obs_steps`` observations (module doc)."""

    def __init__(self, config: DiffusionPolicyConfig,
                 normalizers: Mapping[str, MinMaxNormalizer]):
        super().__init__()
        self.config = config
        self.normalizers = dict(normalizers)
        self.state_features = state_features_for(config)
        self.action_frame = action_frame_for(config)
        self._check_normalizers()
        state_encoder = (StateEncoder(self.state_features.output_dim, config.state_hidden_dims)
                         if 'state' in config.obs_mode else None)
        image_encoder = (MultiViewImageEncoder(
            len(config.views), config.image_size, config.shared_image_encoder,
            config.image_channels, config.num_keypoints, config.image_feature_dim,
            config.crop_fraction) if 'image' in config.obs_mode else None)
        self.obs_encoder = ObservationEncoder(config.obs_mode, config.n_obs_steps,
                                              state_encoder, image_encoder)
        self.unet = ConditionalUnet1D(config.action_dim, self.obs_encoder.output_dim,
                                      config.down_dims, config.kernel_size, config.n_groups,
                                      config.step_embed_dim)
        self.noise_scheduler = DDPMScheduler(**config.scheduler_kwargs())
        self.inference_scheduler = DDIMScheduler(**config.scheduler_kwargs())

    @property
    def device(self) -> torch.device:
        """Device the weights live on."""
        return next(self.parameters()).device

    def encode_observation(self, obs: Batch) -> torch.Tensor:
        """Return the U-Net condition for raw ``state (B, n_obs, S)`` and/or ``images``."""
        state = images = None
        if self.obs_encoder.state_encoder is not None:
            state = self.normalize_state(obs['state'])
        if self.obs_encoder.image_encoder is not None:
            images = self._tensor(obs['images'])
        return self.obs_encoder(state, images)

    def compute_loss(self, batch: Batch) -> torch.Tensor:
        """Return the denoising MSE for raw ``batch['action'] (B, horizon, A)`` and its obs."""
        actions = self._tensor(batch['action']).float()
        expected = (self.config.horizon, self.config.action_dim)
        if tuple(actions.shape[1:]) != expected:
            raise ValueError(f'action must be (B, {expected[0]}, {expected[1]}), '
                             f'got {tuple(actions.shape)}')
        clean = self.normalizers['action'].normalize(self._into_frame(actions, batch))
        noise = torch.randn_like(clean)
        steps = torch.randint(0, self.config.num_train_timesteps, (clean.shape[0],),
                              device=clean.device)
        noisy = self.noise_scheduler.add_noise(clean, noise, steps)
        predicted = self.unet(noisy, steps, self.encode_observation(batch))
        if self.config.prediction_type == 'epsilon':
            target = noise
        elif self.config.prediction_type == 'sample':
            target = clean
        else:
            target = self.noise_scheduler.get_velocity(clean, noise, steps)
        return F.mse_loss(predicted, target)

    @torch.inference_mode()
    def predict_action_chunk(self, obs: Batch, num_inference_steps: Optional[int] = None,
                             generator: Optional[torch.Generator] = None,
                             warm_start: Optional[Union[np.ndarray, torch.Tensor]] = None,
                             warm_start_strength: float = 0.5,
                             noise_scale: float = 1.0) -> torch.Tensor:
        """
        Sample ``(B, horizon, A)`` actions in raw units with DDIM.

        ``warm_start`` (raw ``(B, horizon, A)``, e.g. ``ActionQueue.warm_start_chunk()``)
        is noised to ``warm_start_strength`` of the way along the schedule and
        denoised from there, skipping the earlier steps (strength 1 runs every
        step). ``noise_scale`` multiplies the initial noise (the sampling
        temperature; DDIM is deterministic from there, so 0 gives one fixed
        chunk per observation). Index 0 of the chunk is the time of the oldest
        observation step.
        """
        steps = num_inference_steps or self.config.num_inference_steps
        scheduler = self.inference_scheduler
        scheduler.set_timesteps(steps, device=self.device)
        cond = self.encode_observation(obs)
        shape = (cond.shape[0], self.config.horizon, self.config.action_dim)
        noise_device = generator.device if generator is not None else self.device
        sample = torch.randn(shape, generator=generator, device=noise_device).to(self.device)
        sample = sample * noise_scale
        timesteps = scheduler.timesteps
        if warm_start is not None:
            if not 0 < warm_start_strength <= 1:
                raise ValueError('warm_start_strength must be in (0, 1]')
            later = timesteps[timesteps < self.config.num_train_timesteps * warm_start_strength]
            timesteps = later if len(later) else timesteps[-1:]
            clean = self.normalizers['action'].normalize(
                self._into_frame(self._tensor(warm_start).float(), obs))
            sample = scheduler.add_noise(clean.reshape(shape), sample, timesteps[:1])
        for step in timesteps:
            with autocast_context(self.device):
                predicted = self.unet(sample, step, cond)
            sample = scheduler.step(predicted.float(), step, sample,
                                    generator=generator).prev_sample
        actions = self.normalizers['action'].denormalize(sample.clamp(-1.0, 1.0))
        if self.action_frame is None:
            return actions
        return self.action_frame.to_world(actions, self._frame_heading(obs))

    def _frame_heading(self, obs: Batch) -> torch.Tensor:
        """Return ``(B, 1)`` action-frame headings at each window's newest observation."""
        return self.action_frame.heading(self._tensor(obs['state']).float()[:, -1, None])

    def _into_frame(self, actions: torch.Tensor, obs: Batch) -> torch.Tensor:
        """Return raw world ``actions (B, horizon, A)`` in the policy's action frame."""
        if self.action_frame is None:
            return actions
        return self.action_frame.to_frame(actions, self._frame_heading(obs))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Save weights, config and normalisers as a checkpoint folder."""
        normalization = {name: n.to_dict() for name, n in self.normalizers.items()}
        save_checkpoint(path, self, self.config.to_dict(), normalization, CHECKPOINT_KIND)

    @classmethod
    def from_checkpoint(cls, path: Union[str, os.PathLike],
                        device: Union[str, torch.device] = 'cpu') -> 'DiffusionPolicy':
        """Load a policy saved by :meth:`save`, in eval mode; mismatches raise ValueError."""
        policy = load_checkpoint(path, _build_from_checkpoint, CHECKPOINT_KIND, device)
        return policy.eval()

    def _tensor(self, value: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
        """Move an array onto the policy's device, keeping its dtype."""
        return torch.as_tensor(value, device=self.device)

    def normalize_state(self, state: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
        """Return the normalised features of raw ``(..., state_dim)`` states."""
        features = self.state_features(self._tensor(state).float())
        return self.normalizers['state'].normalize(features)

    def _check_normalizers(self) -> None:
        """Require normalisers whose sizes match the config."""
        needed = {'action': self.config.action_dim}
        if 'state' in self.config.obs_mode:
            needed['state'] = self.state_features.output_dim
        for name, dim in needed.items():
            if name not in self.normalizers:
                raise ValueError(f'a {name!r} normaliser is required')
            if self.normalizers[name].dim != dim:
                raise ValueError(f'{name!r} normaliser has {self.normalizers[name].dim} dims, '
                                 f'config says {dim}')


def _build_from_checkpoint(config: dict, normalization: dict) -> DiffusionPolicy:
    """Build an untrained policy from a checkpoint's config and normalisation stats."""
    normalizers = {name: MinMaxNormalizer.from_dict(d) for name, d in normalization.items()}
    return DiffusionPolicy(DiffusionPolicyConfig.from_dict(config), normalizers)


def create_ema(policy: DiffusionPolicy) -> EMAModel:
    """Track an EMA of ``policy``'s parameters with the config's warm-up power and max decay."""
    return EMAModel(policy.parameters(), decay=policy.config.ema_max_decay,
                    use_ema_warmup=True, power=policy.config.ema_power)


@contextmanager
def ema_weights(policy: DiffusionPolicy, ema: EMAModel) -> Iterator[DiffusionPolicy]:
    """Swap the EMA weights into ``policy`` for the block; restore the training weights after."""
    ema.store(policy.parameters())
    ema.copy_to(policy.parameters())
    try:
        yield policy
    finally:
        ema.restore(policy.parameters())
