"""
Train a ResiP residual with PPO on top of a frozen diffusion BC policy.

Each iteration collects ``rollout_steps`` control steps from every worker
environment (:mod:`.env`): the frozen base samples chunks for the
environments that need one (:class:`..diffusion_bc.batched_base.BatchedBasePolicy`, few
DDIM steps), the residual actor adds a sampled correction in normalised
action space, and the sparse reward (or another registered reward) is
scaled by the running return std. Then :func:`.ppo.ppo_update` runs up to
50 epochs with the KL early stop. Episodes that hit the step limit are
treated as ended (no bootstrap): with a sparse success reward and γ close to
1, a time-out is a failure the critic should learn to predict.

Every ``eval_every`` iterations (and before the first, which measures the
base alone, because the residual starts at exactly zero) the deterministic
policy (residual mean) runs one episode on each validation seed
``val_seed_start ..``; the best residual by validation success is kept in
``RUN/residual/``. Validation seeds are separate from the final evaluation
seeds (``vrl eval``), and training episodes use seeds above
:data:`.env.TRAIN_SEED_FLOOR`.

Run folder (besides ``config.json``, ``checkpoint/`` and ``residual/`` of
:mod:`.agent`)::

    RUN/residual_last/      the latest residual, for resuming
    RUN/training_state.pt   optimisers, reward scaling, counters, best score, RNG
    RUN/metrics.jsonl       one line per iteration (rollout, PPO and validation stats)
    RUN/validation.jsonl    one line per validation: the evaluation JSON of ``vrl eval``
                            (per-seed episodes) with the iteration and env steps
    RUN/tensorboard/        the same as TensorBoard scalars
    RUN/learning_curve.png  validation success and rollout return against env steps
    RUN/summary.json        env steps, wall time, baseline, best and when the kept one was

``resume=True`` continues from ``residual_last`` with fresh episodes.
``init_residual`` starts a new run from another run's (or a shipped model's)
residual, actor and critic, over the same frozen base at the same base
settings; the optimisers and the reward scaling start afresh, so
``critic_warmup_updates`` lets the critic catch up with the new scaling
first. Its summary names the residual it started from and that one's own
training, so the total cost stays on the record.
"""

from pathlib import Path
import time
from typing import Any, Mapping, Optional

import numpy as np
import torch
from visual_rl_stack.core.checkpoints import same_checkpoint
from visual_rl_stack.core.policy import resolve_run
from visual_rl_stack.core.run_layout import (PathLike, RESIDUAL, RESIDUAL_KIND, RESIDUAL_LAST,
                                             run_kind)

from .agent import residual_config_for, ResidualAgent
from .config import PPOConfig, ResidualTrainSettings
from .ppo import compute_gae, make_optimizers, ppo_update, RewardNormalizer
from .residual_run import ResidualRun


class ResidualTrainer(ResidualRun):
    """One residual PPO run: the shared run (:class:`.residual_run.ResidualRun`) plus PPO."""

    kind = RESIDUAL_KIND
    title = 'ResiP residual PPO'

    def __init__(self, out_dir: Path, settings: ResidualTrainSettings,
                 residual_settings: Mapping[str, Any], ppo: PPOConfig, resume: bool,
                 asynchronous: bool = True):
        """Load the base, set up or resume the run folder, start the environments."""
        self.ppo, self.residual_settings = ppo, residual_settings
        super().__init__(out_dir, settings, resume, asynchronous)

    def build_learner(self, saved: Optional[dict]) -> None:
        """Create the agent (new, from ``init_residual`` or resumed) and PPO's optimisers."""
        if saved is not None:
            self.agent = ResidualAgent.from_checkpoint(self.out_dir / RESIDUAL_LAST).train()
        elif self.settings.init_residual is not None:
            self.agent = self._initial_residual(self.base_checkpoint, self.residual_settings)
        else:
            self.agent = ResidualAgent(residual_config_for(self.policy,
                                                           **self.residual_settings))
        self.optimizers = make_optimizers(self.agent.actor, self.agent.critic, self.ppo)
        self.reward_scale = RewardNormalizer(self.settings.envs, self.ppo.gamma,
                                             self.ppo.reward_clip)

    def learner_configs(self) -> dict[str, dict]:
        """Return the residual network's and PPO's settings for config.json."""
        return {'residual': self.agent.config.to_dict(), 'ppo': self.ppo.to_dict()}

    def same_learner_configs(self, config: dict) -> bool:
        """Return whether the saved PPO settings are this run's (missing keys: defaults)."""
        return self.ppo == PPOConfig.from_dict(config['ppo'])

    def gamma(self) -> float:
        """Return PPO's discount."""
        return self.ppo.gamma

    def _initial_residual(self, base_checkpoint: Path,
                          residual_settings: Mapping[str, Any]) -> ResidualAgent:
        """Load ``init_residual``'s agent; refuse one trained over another base or settings."""
        name = self.settings.init_residual
        checkpoint, run_config = resolve_run(name)
        if not (run_kind(checkpoint.parent, run_config) == RESIDUAL_KIND):
            raise ValueError(f'init residual {name} is not a residual run of PPO (no '
                             f"{RESIDUAL}/ inside, or another learner's)")
        if residual_settings:
            raise ValueError(f'residual settings ({", ".join(sorted(residual_settings))}) '
                             f'cannot be changed when starting from {name}: it keeps its own')
        if not same_checkpoint(checkpoint, base_checkpoint):
            raise ValueError(f'init residual {name} was trained over another base than '
                             f'{self.settings.base}')
        run_config = run_config or {}
        theirs = {  # runs from before a setting existed ran with its default
            'base_inference_steps': run_config.get('base_inference_steps'),
            'base_noise_scale': run_config.get('base_noise_scale', 1.0),
            'base_action_steps': self.policy.config.executed_steps(
                run_config.get('base_action_steps'))}
        ours = {'base_inference_steps': self.settings.base_inference_steps,
                'base_noise_scale': self.settings.base_noise_scale,
                'base_action_steps': self.base_action_steps}
        different = [f'{k} {theirs[k]} (here {v})' for k, v in ours.items() if theirs[k] != v]
        if different:
            raise ValueError(f'init residual {name} ran its base with other settings: '
                             + ', '.join(different))
        return ResidualAgent.from_checkpoint(checkpoint.parent / RESIDUAL).train()

    def restore_learner_state(self, saved: dict) -> None:
        """Continue the optimisers and the reward scaling."""
        self.optimizers.actor.load_state_dict(saved['actor_optimizer'])
        self.optimizers.critic.load_state_dict(saved['critic_optimizer'])
        rms = self.reward_scale.return_rms
        rms.mean, rms.var, rms.count = (np.float64(saved['reward_rms'][k])
                                        for k in ('mean', 'var', 'count'))

    def learner_state(self) -> dict:
        """Return the optimisers and the reward scaling's statistics."""
        return {'actor_optimizer': self.optimizers.actor.state_dict(),
                'critic_optimizer': self.optimizers.critic.state_dict(),
                'reward_rms': {k: float(getattr(self.reward_scale.return_rms, k))
                               for k in ('mean', 'var', 'count')}}

    def save_agent(self, path: Path) -> None:
        """Write the actor and critic."""
        self.agent.save(path)

    def validation_action(self, state_norm: torch.Tensor, base_norm: torch.Tensor
                          ) -> torch.Tensor:
        """Return base plus the residual's mean."""
        residual, _ = self.agent.actor.act(state_norm, base_norm, deterministic=True)
        return self.agent.actor.combine(base_norm, residual)

    def begin_episodes(self) -> None:
        """Reset every environment into a fresh training episode; restart return scaling."""
        super().begin_episodes()
        self.episode_start = np.ones(self.settings.envs, dtype=bool)
        self.reward_scale.returns[:] = 0.0

    def train_iteration(self) -> dict:
        """Collect one rollout and run the PPO update on it."""
        batch, rollout = self.rollout()
        update = ppo_update(self.agent.actor, self.agent.critic, self.optimizers, batch,
                            self.ppo, train_actor=self.ppo.trains_actor(self.iteration))
        return {'rollout': rollout, 'ppo': update}

    def rollout(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Collect ``rollout_steps`` steps from every environment; return the PPO batch."""
        steps, n = self.rollout_steps, self.settings.envs
        keys = ('states', 'base_actions', 'residuals', 'log_probs', 'values', 'rewards', 'dones')
        store: dict[str, list] = {k: [] for k in keys}
        started = time.perf_counter()
        plan_s = self.base.plan_seconds
        for _ in range(steps):
            state = self.space.state_norm(self.obs)
            base = self.space.action_norm(self.base_action, self.obs)
            residual, log_prob = self.agent.actor.act(state, base)
            with torch.no_grad():
                value = self.agent.critic(state, base)
            action = self.space.action_raw(self.agent.actor.combine(base, residual), self.obs)
            self.obs, reward, terminated, truncated, _ = self.envs.step(action)
            ended = terminated | truncated
            self.tracker.step(reward, terminated, truncated)
            scaled = self.reward_scale(np.asarray(reward, np.float64), ended)
            for key, item in zip(keys, (state, base, residual, log_prob, value,
                                        torch.as_tensor(scaled, dtype=torch.float32),
                                        torch.as_tensor(self.episode_start))):
                store[key].append(item)
            self.episode_start = ended
            self.base.reset(ended)
            self.base_action = self.base.act(self.obs)
        batch = {k: torch.stack(v) for k, v in store.items()}
        with torch.no_grad():
            last_value = self.agent.critic(self.space.state_norm(self.obs),
                                           self.space.action_norm(self.base_action, self.obs))
        batch['advantages'], batch['returns'] = compute_gae(
            batch['rewards'], batch['values'], batch['dones'], last_value,
            torch.as_tensor(self.episode_start), self.ppo.gamma, self.ppo.gae_lambda)
        self.env_steps += steps * n
        elapsed = time.perf_counter() - started
        stats = {**self.tracker.pop_summary(), 'steps_per_s': steps * n / elapsed,
                 'base_plan_s': self.base.plan_seconds - plan_s, 'seconds': elapsed}
        return batch, stats


def train_residual(out_dir: PathLike, settings: ResidualTrainSettings,
                   residual_settings: Optional[Mapping[str, Any]] = None,
                   ppo: Optional[PPOConfig] = None, resume: bool = False,
                   progress: bool = True, asynchronous: bool = True) -> dict:
    """Train (or resume) a residual PPO run in ``out_dir``; return its summary (module doc)."""
    trainer = ResidualTrainer(Path(out_dir), settings, dict(residual_settings or {}),
                              ppo or PPOConfig(), resume, asynchronous)
    return trainer.run(progress)
