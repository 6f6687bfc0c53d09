"""
Diffusion-policy inference latency on the CPU, for ``vrl bench policy``.

The control loop pays one chunk inference every ``n_action_steps`` steps, so
the numbers that matter are the per-chunk median and p99 (the worst stall the
loop sees) and the per-chunk mean divided by ``n_action_steps`` (the amortised
cost per control step). Each DDIM step count is measured after a few
untimed warm-up chunks, under ``torch.inference_mode``, with batch size 1.

Without a run folder the policy is built from the default
:class:`DiffusionPolicyConfig` with fresh weights and normalisers fitted to
random data: latency depends on the network's shapes, not on its weight values.
"""

import time
from typing import Optional, Sequence, Union

import numpy as np
import torch
from visual_rl_stack.core.policy import resolve_run
from visual_rl_stack.core.run_layout import PathLike

from .model.config import DiffusionPolicyConfig
from .model.diffusion_policy import DiffusionPolicy, fit_normalizers

DDIM_STEPS = (4, 8, 16)
DEFAULT_CHUNKS = 50
DEFAULT_WARMUP = 3

#: Why no lerobot diffusion policy is measured beside ours (pip dry-run against
#: requirements.txt on the package index mirror, lerobot 0.1.0 to 0.4.4).
LEROBOT_REASON = (
    'lerobot cannot be installed beside our pins (torch==2.13.0, diffusers==0.42.1, '
    'gymnasium==1.4.0): pip reports ResolutionImpossible for every release on the index. '
    'lerobot 0.4.0-0.4.4 require diffusers<0.36.0,>=0.27.2 (0.4.4 also torch<2.11.0, '
    '0.4.0-0.4.3 torch<2.8.0); lerobot 0.3.3 requires torch<2.8.0,>=2.2.1; lerobot 0.3.2 '
    'requires gymnasium<1.0.0,>=0.29.1; lerobot 0.1.0 requires diffusers<0.27.0,>=0.26.3.'
)


def default_state_config() -> DiffusionPolicyConfig:
    """Return the default state policy size (state 24, action 7) used when no run is given."""
    return DiffusionPolicyConfig(obs_mode='state', state_dim=24, action_dim=7)


def default_image_config() -> DiffusionPolicyConfig:
    """Return the default image policy size (front + wrist at 96x96) used when no run is given."""
    return DiffusionPolicyConfig(obs_mode='image', action_dim=7, views=('front', 'wrist'),
                                 image_size=(96, 96))


def random_init_policy(config: DiffusionPolicyConfig, seed: int = 0) -> DiffusionPolicy:
    """Build a policy with fresh weights and normalisers fitted to random data."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, (256, config.action_dim)).astype(np.float32)
    states = (rng.normal(size=(256, config.state_dim)).astype(np.float32)
              if 'state' in config.obs_mode else None)
    return DiffusionPolicy(config, fit_normalizers(config, actions, states)).eval()


def random_observation(config: DiffusionPolicyConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Return a raw batch-1 observation window of the shapes the policy expects."""
    rng = np.random.default_rng(seed)
    obs = {}
    if 'state' in config.obs_mode:
        obs['state'] = rng.normal(size=(1, config.n_obs_steps, config.state_dim)).astype(
            np.float32)
    if 'image' in config.obs_mode:
        height, width = config.image_size
        obs['images'] = rng.integers(0, 256, (1, config.n_obs_steps, len(config.views),
                                              height, width, 3), dtype=np.uint8)
    return obs


def chunk_latencies_ms(policy: DiffusionPolicy, obs: dict, num_inference_steps: int,
                       chunks: int, warmup: int, seed: int = 0) -> np.ndarray:
    """Time ``chunks`` chunk inferences after ``warmup`` untimed ones; return milliseconds."""
    generator = torch.Generator().manual_seed(seed)
    times = []
    with torch.inference_mode():
        for index in range(warmup + chunks):
            started = time.perf_counter()
            policy.predict_action_chunk(obs, num_inference_steps=num_inference_steps,
                                        generator=generator)
            if index >= warmup:
                times.append(time.perf_counter() - started)
    return np.asarray(times) * 1e3


def measure_policy(policy: DiffusionPolicy, ddim_steps: Sequence[int] = DDIM_STEPS,
                   chunks: int = DEFAULT_CHUNKS, warmup: int = DEFAULT_WARMUP) -> dict:
    """Return the policy's size and per-chunk / per-step latency for each DDIM step count."""
    config = policy.config
    obs = random_observation(config)
    rows = {}
    for steps in ddim_steps:
        ms = chunk_latencies_ms(policy, obs, int(steps), chunks, warmup)
        rows[str(steps)] = {
            'chunk_median_ms': float(np.median(ms)),
            'chunk_p99_ms': float(np.percentile(ms, 99)),
            'chunk_mean_ms': float(ms.mean()),
            'per_step_amortised_ms': float(ms.mean() / config.n_action_steps),
            'chunks': int(ms.size),
        }
    return {
        'parameters': sum(p.numel() for p in policy.parameters()),
        'obs_mode': config.obs_mode, 'state_dim': config.state_dim,
        'action_dim': config.action_dim, 'views': list(config.views),
        'image_size': list(config.image_size), 'n_obs_steps': config.n_obs_steps,
        'horizon': config.horizon, 'n_action_steps': config.n_action_steps,
        'down_dims': list(config.down_dims), 'ddim': rows,
    }


def load_or_build(run: Optional[PathLike], config: DiffusionPolicyConfig
                  ) -> tuple[DiffusionPolicy, dict]:
    """Load a shipped model's or a run's checkpoint on the CPU, or build ``config`` at random."""
    if run is None:
        return random_init_policy(config), {'weights': 'random-init', 'run': None}
    checkpoint, _ = resolve_run(run)
    return (DiffusionPolicy.from_checkpoint(checkpoint, 'cpu'),
            {'weights': 'checkpoint', 'run': str(checkpoint)})


def lerobot_status() -> dict:
    """Say why lerobot's diffusion policy is not measured (see :data:`LEROBOT_REASON`)."""
    return {'available': False, 'reason': LEROBOT_REASON}


def policy_latency(state_run: Optional[PathLike] = None,
                   image_run: Optional[PathLike] = None,
                   ddim_steps: Sequence[int] = DDIM_STEPS, chunks: int = DEFAULT_CHUNKS,
                   warmup: int = DEFAULT_WARMUP,
                   state_config: Optional[DiffusionPolicyConfig] = None,
                   image_config: Optional[DiffusionPolicyConfig] = None
                   ) -> dict[str, Union[dict, int, str, list]]:
    """
    Measure the state and image policies; return a JSON-ready dict.

    ``state_config`` / ``image_config`` replace the default sizes used when no
    run is given (tests use tiny ones). Everything runs on the CPU.
    """
    if chunks < 1 or warmup < 0:
        raise ValueError('chunks must be >= 1 and warmup >= 0')
    result: dict = {
        'device': 'cpu', 'torch_version': torch.__version__,
        'torch_threads': torch.get_num_threads(),
        'torch_interop_threads': torch.get_num_interop_threads(),
        'batch_size': 1, 'chunks': chunks, 'warmup': warmup,
        'ddim_steps': [int(s) for s in ddim_steps],
    }
    for name, run, config in (('state', state_run, state_config or default_state_config()),
                              ('image', image_run, image_config or default_image_config())):
        policy, source = load_or_build(run, config)
        result[name] = {**source, **measure_policy(policy, ddim_steps, chunks, warmup)}
    result['lerobot'] = lerobot_status()
    return result
