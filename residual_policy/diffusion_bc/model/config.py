"""
The diffusion policy's settings, validated, without torch (the CLI and run cards read them).

:class:`DiffusionPolicyConfig` shapes the network and the diffusion process
and is saved with every checkpoint; ``vrl train-bc`` generates one flag per
field the data does not decide.
"""

from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

from visual_rl_stack.core.config_dicts import config_from_dict, setting

#: What a diffusion policy can observe.
OBS_MODES = ('state', 'image', 'state+image')
#: State feature sets (:mod:`.state_features`).
FEATURE_SETS = ('raw', 'relative', 'invariant', 'frames')
#: Config fields the data decides; a training run's overrides may not set them.
DATA_FIELDS = ('obs_mode', 'state_dim', 'state_labels', 'action_dim', 'views', 'image_size')
#: Width of a delta action ``[dx, dy, dz, droll, dpitch, dyaw, grip]``.
DELTA_ACTION_DIM = 7


def action_frame_offsets(state_labels: Sequence[Sequence], frame: Sequence[str],
                         action_dim: int) -> tuple[int, int]:
    """Return where the two position fields ``frame = (a, b)`` start in the raw state."""
    if len(frame) != 2:
        raise ValueError(f'action_frame must name two position fields, got {list(frame)}')
    if action_dim != DELTA_ACTION_DIM:
        raise ValueError(f'action_frame needs delta actions of {DELTA_ACTION_DIM} dims '
                         f'[dx, dy, dz, droll, dpitch, dyaw, grip], got {action_dim}')
    starts, start = {}, 0
    for name, size in state_labels:
        if str(name).endswith('_position') and int(size) == 3:
            starts[str(name)] = start
        start += int(size)
    missing = [name for name in frame if name not in starts]
    if missing:
        raise ValueError(f'action_frame fields {missing} are not positions of the state '
                         f'layout; positions: {sorted(starts)}')
    return starts[frame[0]], starts[frame[1]]


@dataclass(frozen=True)
class DiffusionPolicyConfig:
    """Everything that shapes the network and the diffusion process; saved with checkpoints."""

    obs_mode: str = setting('state', 'what the policy observes: state, image or state+image')
    state_dim: int = setting(0, 'width of the raw state vector (from the data)')
    action_dim: int = setting(7, 'width of an action (from the data)')
    views: tuple[str, ...] = setting((), 'camera views the image encoder reads (from the data)')
    image_size: tuple[int, int] = setting(
        (96, 96), 'image size in pixels (from the data)')
    shared_image_encoder: bool = setting(
        False, 'one image encoder for all views instead of one per view')
    image_channels: tuple[int, ...] = setting(
        (32, 64, 128), 'channels of the image encoder conv stages')
    image_feature_dim: int = setting(64, 'features per view after the spatial-softmax head')
    num_keypoints: int = setting(32, 'spatial-softmax keypoints per view')
    crop_fraction: float = setting(
        0.9, 'random-crop size as a fraction of the image (centre crop at inference)')
    state_hidden_dims: tuple[int, ...] = setting(
        (), 'hidden sizes of the state MLP (none: features pass through)')
    state_labels: tuple = setting((), 'named fields (name, size) of the raw state (from the data)')
    state_features: str = setting(
        'raw', 'features derived from the raw state: raw, relative, invariant or frames')
    action_frame: tuple[str, ...] = setting(
        (), 'two state position fields (FROM, TO): learn delta actions in the table-plane frame '
        'facing from FROM to TO; none: world coordinates')
    n_obs_steps: int = setting(2, 'observation steps the policy conditions on')
    horizon: int = setting(16, 'actions per predicted chunk')
    n_action_steps: int = setting(8, 'actions executed per chunk before replanning')
    down_dims: tuple[int, ...] = setting((64, 128, 256), 'channels of the U-Net levels')
    kernel_size: int = setting(5, 'U-Net convolution kernel size')
    n_groups: int = setting(8, 'GroupNorm groups in the U-Net')
    step_embed_dim: int = setting(128, 'width of the diffusion-step embedding')
    num_train_timesteps: int = setting(100, 'diffusion steps of the DDPM training schedule')
    beta_schedule: str = setting(
        'squaredcos_cap_v2', 'noise schedule (a diffusers beta_schedule name)')
    prediction_type: str = setting('epsilon', 'what the network predicts: epsilon or sample')
    clip_sample: bool = setting(True, 'clip samples to [-1, 1] inside the scheduler')
    num_inference_steps: int = setting(10, 'DDIM steps at inference unless a caller chooses')
    ema_power: float = setting(0.75, 'warm-up power of the EMA decay')
    ema_max_decay: float = setting(0.9999, 'largest EMA decay')

    def __post_init__(self):
        """Reject settings the network or the action queue cannot honour."""
        object.__setattr__(self, 'state_labels',
                           tuple((str(name), int(size)) for name, size in self.state_labels))
        object.__setattr__(self, 'action_frame', tuple(str(n) for n in self.action_frame))
        problems = []
        if self.action_frame:
            if 'state' not in self.obs_mode:
                problems.append('action_frame needs the state in the observation')
            try:
                action_frame_offsets(self.state_labels or (('state', self.state_dim),),
                                     self.action_frame, self.action_dim)
            except ValueError as err:
                problems.append(str(err))
        if self.state_labels and sum(size for _, size in self.state_labels) != self.state_dim:
            problems.append(f'state_labels {self.state_labels} do not add up to state_dim '
                            f'{self.state_dim}')
        if self.obs_mode not in OBS_MODES:
            problems.append(f'obs_mode must be one of {OBS_MODES}')
        if self.state_features not in FEATURE_SETS:
            problems.append(f'state_features must be one of {FEATURE_SETS}')
        if self.state_features != 'raw' and not self.state_labels:
            problems.append(f'state_features {self.state_features!r} needs state_labels')
        if 'state' in self.obs_mode and self.state_dim < 1:
            problems.append(f'obs_mode {self.obs_mode!r} needs state_dim >= 1')
        if 'image' in self.obs_mode and not self.views:
            problems.append(f'obs_mode {self.obs_mode!r} needs at least one view')
        if self.n_obs_steps < 1 or self.n_action_steps < 1:
            problems.append('n_obs_steps and n_action_steps must be >= 1')
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            problems.append('n_obs_steps - 1 + n_action_steps must not exceed horizon')
        divisor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % divisor:
            problems.append(f'horizon must be divisible by {divisor} for {len(self.down_dims)} '
                            'U-Net levels')
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            problems.append('num_inference_steps must be in [1, num_train_timesteps]')
        if problems:
            raise ValueError('invalid DiffusionPolicyConfig: ' + '; '.join(problems))

    def to_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> 'DiffusionPolicyConfig':
        """Rebuild from :meth:`to_dict` output; unknown keys are refused."""
        return config_from_dict(cls, data)

    def executed_steps(self, action_steps: Optional[int] = None) -> int:
        """Return the actions executed per chunk (default ``n_action_steps``); check they fit."""
        if action_steps is None:
            return self.n_action_steps
        most = self.horizon - self.n_obs_steps + 1
        if not 1 <= action_steps <= most:
            raise ValueError(f'action_steps must be in 1 .. {most} for a policy with horizon '
                             f'{self.horizon} and {self.n_obs_steps} observation '
                             f'steps, got {action_steps}')
        return int(action_steps)

    def scheduler_kwargs(self) -> dict:
        """Return the settings DDPM (training) and DDIM (inference) must share."""
        return {'num_train_timesteps': self.num_train_timesteps,
                'beta_schedule': self.beta_schedule, 'clip_sample': self.clip_sample,
                'prediction_type': self.prediction_type}


def resip_config(state_dim: int, action_dim: int) -> DiffusionPolicyConfig:
    """Return the state-based base policy size used by ResiP (horizon 32, 1 obs step)."""
    return DiffusionPolicyConfig(obs_mode='state', state_dim=state_dim, action_dim=action_dim,
                                 n_obs_steps=1, horizon=32, n_action_steps=8,
                                 down_dims=(256, 512, 1024), step_embed_dim=256,
                                 num_inference_steps=16)
