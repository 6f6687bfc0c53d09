"""
Train an off-policy residual (ResFiT) on top of a frozen diffusion BC policy, in process.

The run is a :class:`..resip.residual_run.ResidualRun` (base, run folder,
validation, logs, resume) whose iteration is ``rollout_steps`` steps of every
worker environment, each followed by its share of gradient updates:

- the first ``warmup_steps`` environment steps are the base alone (residual
  zero) and fill the buffer without updates; then ``critic_warmup_updates``
  critic-only updates, then TD3 (:mod:`.learner`) at ``utd`` updates per
  environment step, the actor every ``actor_delay`` of them;
- exploration is Gaussian noise on the residual, optionally applied to a
  growing share of episodes (``progressive_steps``, Policy Decorator);
- steps become n-step transitions (:mod:`.replay`); a time limit bootstraps
  from the episode's last observation and the base's action there, a
  success does not;
- with ``demos``, successful demonstration bags (:mod:`.demos`) make up
  ``demo_ratio`` of every batch.

Run folder (besides the shared files of :mod:`..resip.residual_run`)::

    RUN/residual/, RUN/residual_last/   the best and the latest actor and critics
    RUN/replay.npz                      the online replay buffer (for resuming)
"""

from pathlib import Path
import time
from typing import Optional

import numpy as np
import torch
from visual_rl_stack.core.devices import limit_thread_torch
from visual_rl_stack.core.run_layout import PathLike, RESFIT_KIND, RESIDUAL_LAST
from visual_rl_stack.residual_policy.diffusion_bc.batched_base import BatchedBasePolicy
from visual_rl_stack.residual_policy.resip.config import ResidualTrainSettings
from visual_rl_stack.residual_policy.resip.residual_run import ResidualRun

from .agent import resfit_config_for, ResFiTAgent
from .demos import demo_buffer
from .learner import ResFiTLearner
from .replay import NStepAssembler, ReplayBuffer

REPLAY_FILE = 'replay.npz'


class ResFiTTrainer(ResidualRun):
    """One off-policy residual run (module doc)."""

    kind = RESFIT_KIND
    title = 'ResFiT off-policy residual'

    def __init__(self, out_dir: Path, settings: ResidualTrainSettings, overrides: dict,
                 resume: bool, asynchronous: bool = True):
        """Load the base, set up or resume the run, the buffers and the environments."""
        self.overrides = dict(overrides)
        if settings.init_residual is not None:
            raise ValueError('--init-residual starts a PPO residual; an off-policy run starts '
                             'from the base (resume an off-policy run with --resume)')
        super().__init__(out_dir, settings, resume, asynchronous)
        config = self.learner.config
        self.assembler = NStepAssembler(settings.envs, config.n_step, config.gamma,
                                        config.state_dim, config.action_dim)
        self.demos = self._load_demos() if settings.demos else None
        self.progress_rng = np.random.default_rng(settings.seed + 1)
        self.use_residual = np.ones(settings.envs, dtype=bool)
        self.update_credit = 0.0

    # The learner's part of the run ---------------------------------------------------------

    def build_learner(self, saved: Optional[dict]) -> None:
        """Create the learner (with the resumed weights and buffer when ``saved``)."""
        if saved is not None:
            agent = ResFiTAgent.from_checkpoint(self.out_dir / RESIDUAL_LAST)
            config = agent.config
        else:
            config = resfit_config_for(self.policy, **self.overrides)
        self.learner = ResFiTLearner(config, self.settings.seed)
        self.buffer = ReplayBuffer(config.buffer_size, config.state_dim, config.action_dim)
        if saved is not None:
            self.learner.actor.load_state_dict(agent.actor.state_dict())
            self.learner.critic.load_state_dict(agent.critic.state_dict())
            self.buffer.load(self.out_dir / REPLAY_FILE)

    def learner_configs(self) -> dict[str, dict]:
        """Return the learner's settings for config.json."""
        return {'resfit': self.learner.config.to_dict()}

    def same_learner_configs(self, config: dict) -> bool:
        """Return whether the saved learner settings are this run's (given flags must match)."""
        saved = config.get('resfit', {})
        return all(saved.get(k) == (list(v) if isinstance(v, tuple) else v)
                   for k, v in self.overrides.items())

    def gamma(self) -> float:
        """Return the learner's discount per control step."""
        return self.learner.config.gamma

    def save_agent(self, path: Path) -> None:
        """Write the actor and critics."""
        ResFiTAgent.from_learner(self.learner).save(path)

    def learner_state(self) -> dict:
        """Return the optimisers, targets and generators; write the replay buffer beside."""
        self.buffer.save(self.out_dir / REPLAY_FILE)
        return {'learner': self.learner.training_state()}

    def restore_learner_state(self, saved: dict) -> None:
        """Restore the optimisers, targets and generators."""
        self.learner.load_training_state(saved['learner'])

    def validation_action(self, state_norm: torch.Tensor, base_norm: torch.Tensor
                          ) -> torch.Tensor:
        """Return base plus the residual, without exploration noise."""
        return self.learner.act(state_norm, base_norm)

    def _load_demos(self) -> ReplayBuffer:
        """Turn the demonstration bags into a fixed buffer of residual transitions."""
        settings = self.settings
        return demo_buffer(
            Path(settings.demos),
            lambda n: BatchedBasePolicy(self.policy, n, settings.base_inference_steps,
                                        settings.seed, settings.base_noise_scale,
                                        self.base_action_steps),
            self.space, self.learner.config, settings.reward)

    # Collecting and learning ----------------------------------------------------------------

    def begin_episodes(self) -> None:
        """Reset every environment into a fresh training episode; drop unfinished windows."""
        super().begin_episodes()
        self.assembler.clear()
        self.use_residual = self._draw_use_residual(self.settings.envs)

    def _draw_use_residual(self, count: int) -> np.ndarray:
        """Return, per new episode, whether it runs the residual (progressive exploration)."""
        config = self.learner.config
        if config.progressive_steps == 0:
            return np.ones(count, dtype=bool)
        done = max(self.env_steps - config.warmup_steps, 0)
        return self.progress_rng.random(count) < min(done / config.progressive_steps, 1.0)

    def train_iteration(self) -> dict:
        """Collect ``rollout_steps`` steps of every environment with their updates."""
        started = time.perf_counter()
        update_s, stats = 0.0, []
        plan_s = self.base.plan_seconds
        for _ in range(self.rollout_steps):
            self.collect_step()
            learn_start = time.perf_counter()
            stats += self.learn()
            update_s += time.perf_counter() - learn_start
        elapsed = time.perf_counter() - started
        steps = self.rollout_steps * self.settings.envs
        rollout = {**self.tracker.pop_summary(), 'steps_per_s': steps / elapsed,
                   'collect_steps_per_s': steps / max(elapsed - update_s, 1e-9),
                   'base_plan_s': self.base.plan_seconds - plan_s, 'seconds': elapsed,
                   'buffer': len(self.buffer)}
        learning = {'updates': self.learner.updates, 'update_s': update_s}
        if stats:
            keys = {k for row in stats for k in row}
            learning.update({k: float(np.mean([r[k] for r in stats if k in r])) for k in keys})
            learning['updates_per_s'] = len(stats) / max(update_s, 1e-9)
        return {'rollout': rollout, 'learner': learning}

    def collect_step(self) -> None:
        """Step every environment once and store the transitions that completes."""
        space, obs, n = self.space, self.obs, self.settings.envs
        state = space.state_norm(obs)
        base = space.action_norm(self.base_action, obs)
        warm = self.env_steps < self.learner.config.warmup_steps
        sent = base if warm else self.learner.act(
            state, base, explore=True, use_residual=torch.from_numpy(self.use_residual))
        next_obs, reward, terminated, truncated, info = self.envs.step(
            space.action_raw(sent, obs))
        ended = terminated | truncated
        self.tracker.step(reward, terminated, truncated)
        last_obs = next_obs.copy()
        for i in np.flatnonzero(ended):
            last_obs[i] = info['final_obs'][i]
        after = np.zeros_like(self.base_action)
        cut = np.flatnonzero(truncated & ~terminated)
        if len(cut):  # the base's next action in the episode that hit its time limit
            after[cut] = self.base.act(last_obs[cut], cut)
        self.base.reset(ended)
        self.base_action = self.base.act(next_obs)
        after[~truncated] = self.base_action[~truncated]  # a success never bootstraps
        with torch.no_grad():
            batch = self.assembler.add(
                state.numpy(), base.numpy(), sent.numpy(), reward, terminated,
                truncated & ~terminated, space.state_norm(last_obs).numpy(),
                space.action_norm(after, last_obs).numpy())
        self.buffer.add(batch)
        self.obs = next_obs
        self.env_steps += n
        if ended.any():
            self.use_residual[ended] = self._draw_use_residual(int(ended.sum()))

    def learn(self) -> list[dict]:
        """Run the updates this step earned (``utd`` per environment step) after the warm-up."""
        config = self.learner.config
        if self.env_steps < config.warmup_steps or not (len(self.buffer) or self.demos):
            return []  # n-step windows fill before the first transition exists
        self.update_credit += config.utd * self.settings.envs
        rows = []
        while self.update_credit >= 1:
            self.update_credit -= 1
            rows.append(self.learner.update(self.learner.sample(self.buffer, self.demos)))
        return rows


def train_resfit(out_dir: PathLike, settings: ResidualTrainSettings,
                 overrides: Optional[dict] = None, resume: bool = False,
                 progress: bool = True, asynchronous: bool = True,
                 torch_threads: Optional[int] = 1) -> dict:
    """
    Train (or resume) an off-policy residual run in ``out_dir``; return its summary.

    ``torch_threads`` caps this process's torch threads (default 1: small
    networks gain nothing from more, and on a busy machine default threads
    made updates several times slower); None leaves torch's default.
    """
    if torch_threads is not None:
        limit_thread_torch(torch_threads)
    trainer = ResFiTTrainer(Path(out_dir), settings, overrides or {}, resume, asynchronous)
    return trainer.run(progress)
