"""
Run a trained diffusion BC policy step by step: observation window, action chunks, latency.

:class:`BCPolicyRunner` loads a run (``RUN/`` or ``RUN/checkpoint/``), keeps
the last ``n_obs_steps`` observations and the executable part of the latest
chunk, and hands out one action per control step, sampling a new chunk every
``n_action_steps`` steps (see :mod:`.action_queue` for the indexing). The
time of every chunk inference is recorded in :attr:`BCPolicyRunner.latencies_s`.

The runner is the ``bc`` kind of :class:`visual_rl_stack.core.policy.Policy`
(:func:`open_bc_policy`); it takes observations of the shared contract
(:mod:`visual_rl_stack.core.observation`), so a policy sees the same numbers
in evaluation, through ROS and in training.
"""

from pathlib import Path
import time
from typing import Optional

import numpy as np
import torch
from visual_rl_stack.core.devices import resolve_device
from visual_rl_stack.core.policy import PolicyOptions, resolve_run
from visual_rl_stack.core.run_layout import BC_KIND, PathLike

from .action_queue import ActionQueue, ObservationHistory
from .model.diffusion_policy import DiffusionPolicy


class BCPolicyRunner:
    """
    Receding-horizon execution of a trained :class:`DiffusionPolicy` (see the module doc).

    ``num_inference_steps`` overrides the checkpoint's DDIM step count and
    ``action_steps`` its executed steps per chunk (fewer re-plan more often:
    closer-loop control for contact-rich tasks, more inference per step);
    ``seed`` seeds the sampling noise (one generator for the runner's life).
    ``warm_start`` in (0, 1] starts each chunk from the unexecuted tail of the
    previous one, noised that fraction of the way along the schedule: plans
    stay consistent between chunks instead of hopping between modes.
    ``noise_scale`` (>= 0) multiplies the initial noise of every chunk: 1
    samples the learned distribution, smaller values sample nearer its mode
    and 0 makes the policy deterministic.
    """

    def __init__(self, run_or_checkpoint: PathLike, device: str = 'auto',
                 num_inference_steps: Optional[int] = None, seed: int = 0,
                 action_steps: Optional[int] = None,
                 warm_start: Optional[float] = None,
                 noise_scale: Optional[float] = None) -> None:
        """Load the policy and its run settings; set up the observation and action queues."""
        checkpoint, run_config = resolve_run(run_or_checkpoint)
        self.checkpoint = checkpoint
        self.run_config = run_config or {}
        self.device = resolve_device(device)
        self.policy = DiffusionPolicy.from_checkpoint(checkpoint, self.device)
        self.config = self.policy.config
        self.num_inference_steps = num_inference_steps
        self.generator = torch.Generator().manual_seed(seed)
        self.history = ObservationHistory(self.config.n_obs_steps)
        self.action_steps = self.config.executed_steps(action_steps)
        if warm_start is not None and not 0 < warm_start <= 1:
            raise ValueError(f'warm_start must be in (0, 1], got {warm_start}')
        self.warm_start = warm_start
        self.noise_scale = 1.0 if noise_scale is None else float(noise_scale)
        if not (np.isfinite(self.noise_scale) and self.noise_scale >= 0):
            raise ValueError(f'noise_scale must be a finite number >= 0, got {noise_scale}')
        self.queue = ActionQueue(self.action_steps, self.config.n_obs_steps,
                                 warm_start=warm_start is not None)
        #: Seconds per chunk inference, over the runner's life (not cleared by reset).
        self.latencies_s: list[float] = []
        #: Control steps served, over the runner's life.
        self.steps = 0

    kind = BC_KIND

    @classmethod
    def from_options(cls, run: PathLike, options: PolicyOptions) -> 'BCPolicyRunner':
        """Open ``run`` with the kind-independent :class:`PolicyOptions` (subclasses too)."""
        return cls(run, options.device, options.num_inference_steps, options.seed,
                   options.action_steps, options.warm_start, options.noise_scale)

    @property
    def uses_images(self) -> bool:
        """Return whether the policy looks at camera images."""
        return 'image' in self.config.obs_mode

    @property
    def views(self) -> tuple[str, ...]:
        """Return the camera views the policy expects, in order (empty without images)."""
        return tuple(self.config.views) if self.uses_images else ()

    @property
    def image_size(self) -> tuple[int, int]:
        """Return the ``(height, width)`` of the training images."""
        return tuple(self.config.image_size)

    @property
    def task(self) -> Optional[str]:
        """Return the task the run was trained on (None for a bare checkpoint)."""
        return self.run_config.get('task')

    @property
    def action_mode(self) -> Optional[str]:
        """Return the action mode of the training data (None for a bare checkpoint)."""
        return self.run_config.get('action_mode')

    @property
    def state_labels(self) -> Optional[list[tuple[str, int]]]:
        """Return the training state layout ``[(label, size), ...]`` (None if unknown)."""
        labels = self.run_config.get('state_labels')
        return None if labels is None else [(str(n), int(s)) for n, s in labels]

    @property
    def action_dim(self) -> int:
        """Return the size of one action."""
        return int(self.config.action_dim)

    def check_compatible(self, task: str, action_mode: str) -> None:
        """Raise ValueError when the run was trained for another task or action mode."""
        if self.task is not None and self.task != task:
            raise ValueError(f'policy {self.checkpoint} was trained on task {self.task!r}, '
                             f'not {task!r}')
        if self.action_mode is not None and self.action_mode != action_mode:
            raise ValueError(f'policy {self.checkpoint} outputs {self.action_mode!r} actions, '
                             f'but the simulator expects {action_mode!r} actions')

    def reseed(self, seed: int) -> None:
        """Restart the sampling noise from ``seed``."""
        self.generator.manual_seed(seed)

    def reset(self) -> None:
        """Forget the observation window and the queued actions (call at episode start)."""
        self.history.reset()
        self.queue.reset()

    def act_from_observation(self, state: np.ndarray,
                             images: Optional[dict[str, np.ndarray]] = None) -> np.ndarray:
        """
        Return the action for this step (simulator layout, float64 ``(A,)``).

        ``state`` is the raw ``(S,)`` vector of :func:`sim_observation`;
        ``images`` maps each of :attr:`views` to an ``(H, W, 3)`` uint8 frame.
        A new chunk is sampled when the queue has run out.
        """
        state = np.asarray(state, dtype=np.float32)
        if state.shape != (self.config.state_dim,) and 'state' in self.config.obs_mode:
            raise ValueError(f'state must have shape ({self.config.state_dim},), '
                             f'got {state.shape}')
        observation = {'state': state}
        if self.uses_images:
            missing = [v for v in self.views if not images or v not in images]
            if missing:
                raise ValueError(f'the policy needs camera views {missing}')
            observation['images'] = np.stack([np.asarray(images[v], dtype=np.uint8)
                                              for v in self.views])
        self.history.append(observation)
        if self.queue.needs_plan():
            obs = {k: v[None] for k, v in self.history.stacked().items()}
            previous = self.queue.warm_start_chunk()
            started = time.perf_counter()
            chunk = self.policy.predict_action_chunk(
                obs, num_inference_steps=self.num_inference_steps, generator=self.generator,
                warm_start=None if previous is None else previous[None],
                warm_start_strength=self.warm_start or 1.0,
                noise_scale=self.noise_scale)[0].float().cpu().numpy()
            self.latencies_s.append(time.perf_counter() - started)
            self.queue.push_chunk(chunk)
        self.steps += 1
        return np.asarray(self.queue.pop(), dtype=np.float64)

    def latency_summary_ms(self) -> dict:
        """Return chunk-inference latency: median and p99 per chunk, mean per control step."""
        if not self.latencies_s:
            return {'median': None, 'p99': None, 'per_step_amortised': None, 'chunks': 0,
                    'steps': self.steps}
        ms = np.asarray(self.latencies_s) * 1e3
        return {'median': float(np.median(ms)), 'p99': float(np.percentile(ms, 99)),
                'per_step_amortised': float(ms.sum() / max(self.steps, 1)),
                'chunks': len(ms), 'steps': self.steps}

    def report(self) -> dict:
        """Return the evaluation record of the runner: latency, device and sampling settings."""
        return {'inference_latency_ms': self.latency_summary_ms(), 'device': str(self.device),
                'action_steps': self.action_steps, 'warm_start': self.warm_start,
                'noise_scale': self.noise_scale}


def open_bc_policy(run: Path, options: PolicyOptions) -> BCPolicyRunner:
    """Open a BC run or checkpoint folder: the ``bc`` policy kind."""
    return BCPolicyRunner.from_options(run, options)
