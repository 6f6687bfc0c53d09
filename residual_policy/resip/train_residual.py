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

from dataclasses import asdict
import datetime
import json
import os
from pathlib import Path
import shutil
import sys
import time
from typing import Any, Mapping, Optional

from matplotlib.figure import Figure
import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from visual_rl_stack.core.checkpoints import same_checkpoint
from visual_rl_stack.core.config_dicts import flatten_mapping
from visual_rl_stack.core.policy import resolve_run
from visual_rl_stack.core.records import machine_description, write_json
from visual_rl_stack.core.run_layout import (CHECKPOINT, CURVE_PLOT, METRICS, MODEL_CARD, PathLike,
                                             RESIDUAL, RESIDUAL_KIND, RESIDUAL_LAST, RUN_CONFIG,
                                             run_kind, SUMMARY, TENSORBOARD, TRAINING_STATE,
                                             training_state_to_use, VALIDATION)
from visual_rl_stack.evaluation.episodes import EpisodeResult, summarise_episodes
from visual_rl_stack.residual_policy.diffusion_bc.batched_base import BatchedBasePolicy
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import DiffusionPolicy

from .agent import NormalisedSpace, residual_config_for, ResidualAgent
from .config import PPOConfig, ResidualTrainSettings
from .env import make_residual_envs, TRAIN_SEED_FLOOR
from .ppo import compute_gae, make_optimizers, ppo_update, RewardNormalizer


def reward_options(settings: ResidualTrainSettings, ppo: PPOConfig) -> dict[str, Any]:
    """Return what the kagi reward's factory gets from the settings (nothing for the others)."""
    if settings.reward != 'kagi':
        return {}
    return {'backend': settings.reward_backend, 'model': settings.reward_model,
            'potential': settings.reward_shaping == 'potential', 'gamma': ppo.gamma}


class EpisodeTracker:
    """Running return and length per environment; finished episodes are collected."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.finished: list[tuple[float, int, bool]] = []

    def step(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> None:
        """Add one step; episodes that ended are recorded (terminated means success)."""
        self.returns += rewards
        self.lengths += 1
        for i in np.flatnonzero(terminated | truncated):
            self.finished.append((float(self.returns[i]), int(self.lengths[i]),
                                  bool(terminated[i])))
            self.returns[i], self.lengths[i] = 0.0, 0

    def restart(self) -> None:
        """Drop the episodes in progress (after the environments were reset)."""
        self.returns[:] = 0.0
        self.lengths[:] = 0

    def pop_summary(self) -> dict[str, Optional[float]]:
        """Return and clear the stats of the episodes finished since the last call."""
        done, self.finished = self.finished, []
        if not done:
            return {'episodes': 0, 'success_rate': None, 'return': None, 'length': None}
        returns, lengths, successes = (np.array(x, dtype=float) for x in zip(*done))
        return {'episodes': len(done), 'success_rate': float(successes.mean()),
                'return': float(returns.mean()), 'length': float(lengths.mean())}


class ResidualTrainer:
    """One residual run: environments, base, agent, optimisers, logs (module doc)."""

    def __init__(self, out_dir: Path, settings: ResidualTrainSettings,
                 residual_settings: Mapping[str, Any], ppo: PPOConfig, resume: bool,
                 asynchronous: bool = True):
        """Load the base, set up or resume the run folder, start the environments."""
        settings.check()
        self.out_dir, self.settings, self.ppo = out_dir, settings, ppo
        state_path = training_state_to_use(out_dir, resume, RESIDUAL)
        saved = torch.load(state_path, map_location='cpu', weights_only=True) if resume else None
        base_checkpoint, base_config = self._base(settings)
        self.policy = DiffusionPolicy.from_checkpoint(base_checkpoint)
        self.space = NormalisedSpace(self.policy)
        self.base_action_steps = self.policy.config.executed_steps(settings.base_action_steps)
        if saved is not None:
            self.agent = ResidualAgent.from_checkpoint(out_dir / RESIDUAL_LAST).train()
        elif settings.init_residual is not None:
            self.agent = self._initial_residual(base_checkpoint, residual_settings)
        else:
            self.agent = ResidualAgent(residual_config_for(self.policy, **residual_settings))
        self.optimizers = make_optimizers(self.agent.actor, self.agent.critic, ppo)
        self.reward_scale = RewardNormalizer(settings.envs, ppo.gamma, ppo.reward_clip)
        self.env_steps, self.iteration, self.wall_s = 0, 0, 0.0
        self.best: Optional[float] = None
        self.history: list[dict] = []
        torch.manual_seed(settings.seed)
        if saved is not None:
            self._check_same_settings()
            self._restore(saved)
        self._write_run_config(base_checkpoint, base_config, resume)
        self.envs = make_residual_envs(settings.task, settings.envs,
                                       base_config.get('action_mode', 'delta'),
                                       settings.reward, asynchronous=asynchronous,
                                       reward_options=reward_options(settings, ppo))
        self.rollout_steps = (settings.rollout_steps
                              or int(self.envs.get_attr('max_episode_steps')[0]))
        self.base = BatchedBasePolicy(self.policy, settings.envs,
                                      settings.base_inference_steps, settings.seed,
                                      settings.base_noise_scale, self.base_action_steps)
        self.tracker = EpisodeTracker(settings.envs)

    def _base(self, settings: ResidualTrainSettings) -> tuple[Path, dict]:
        """Return the base checkpoint and run config; refuse a base for another task."""
        checkpoint, run_config = resolve_run(settings.base)
        run_config = run_config or {}
        if run_config.get('task') not in (None, settings.task):
            raise ValueError(f'base {settings.base} was trained on {run_config["task"]!r}, '
                             f'not {settings.task!r}')
        if (run_kind(checkpoint.parent) == RESIDUAL_KIND):
            raise ValueError(f'base {settings.base} is itself a residual run; '
                             'train on the BC run it refines')
        return checkpoint, run_config

    def _initial_residual(self, base_checkpoint: Path,
                          residual_settings: Mapping[str, Any]) -> ResidualAgent:
        """Load ``init_residual``'s agent; refuse one trained over another base or settings."""
        name = self.settings.init_residual
        checkpoint, run_config = resolve_run(name)
        if not (run_kind(checkpoint.parent) == RESIDUAL_KIND):
            raise ValueError(f'init residual {name} is not a residual run (no '
                             f'{RESIDUAL}/ inside)')
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

    #: Settings a resumed run may change: how long it trains.
    RESUMABLE = ('total_steps', 'time_limit_min')

    def _check_same_settings(self) -> None:
        """Refuse to resume with other settings than the run was started with."""
        config = json.loads((self.out_dir / RUN_CONFIG).read_text())
        saved = config['settings']
        now = json.loads(json.dumps(asdict(self.settings)))
        defaults = asdict(ResidualTrainSettings(task='', base=''))  # for keys older runs lack
        different = sorted(k for k in now if k not in self.RESUMABLE
                           and now[k] != saved.get(k, defaults[k]))
        if different or self.ppo != PPOConfig.from_dict(config['ppo']):  # missing: defaults
            raise ValueError(f'run {self.out_dir} was started with other settings '
                             f'({", ".join(different) or "PPO settings"}); a resumed run keeps '
                             'its settings, only --total-steps and --time-limit-min may change')

    def _restore(self, saved: dict) -> None:
        """Continue counters, optimisers, reward scaling and RNG from a training state."""
        self.optimizers.actor.load_state_dict(saved['actor_optimizer'])
        self.optimizers.critic.load_state_dict(saved['critic_optimizer'])
        rms = self.reward_scale.return_rms
        rms.mean, rms.var, rms.count = (np.float64(saved['reward_rms'][k])
                                        for k in ('mean', 'var', 'count'))
        self.env_steps, self.iteration = saved['env_steps'], saved['iteration']
        self.wall_s, self.best = saved['wall_s'], saved['best']
        self.history = saved['history']
        torch.set_rng_state(saved['torch_rng'])

    def _write_run_config(self, base_checkpoint: Path, base_config: dict, resume: bool) -> None:
        """Copy the base into the run and write config.json (sessions appended on resume)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            shutil.copytree(base_checkpoint, self.out_dir / CHECKPOINT, dirs_exist_ok=True)
        config_path = self.out_dir / RUN_CONFIG
        previous = json.loads(config_path.read_text()) if resume else {}
        session = {'date': _now(), 'from_env_step': self.env_steps,
                   'command': ' '.join(sys.argv), 'machine': machine_description()}
        config = {
            'kind': 'residual', 'task': self.settings.task,
            'action_mode': base_config.get('action_mode', 'delta'),
            'state_labels': base_config.get('state_labels'), 'obs_mode': 'state',
            'base': self.settings.base, 'base_run': base_config,
            'base_inference_steps': self.settings.base_inference_steps,
            'base_noise_scale': self.settings.base_noise_scale,
            'base_action_steps': self.base_action_steps,
            'settings': asdict(self.settings), 'residual': self.agent.config.to_dict(),
            'ppo': self.ppo.to_dict(), 'sessions': previous.get('sessions', []) + [session]}
        write_json(config, config_path)

    def run(self, progress: bool = True) -> dict:
        """Train until ``total_steps`` env steps (or the time limit); return the summary."""
        settings = self.settings
        writer = SummaryWriter(str(self.out_dir / TENSORBOARD),
                               purge_step=self.env_steps + 1)
        bar = tqdm(total=settings.total_steps, initial=min(self.env_steps, settings.total_steps),
                   desc=f'residual {settings.task}', unit='step', disable=not progress)
        session_start = time.perf_counter()
        wall_before = self.wall_s
        try:
            if self.iteration == 0:
                self._log({'iteration': 0, **self.evaluate()}, writer)
                self._save(best_changed=True)
            self.begin_episodes()
            while self.env_steps < settings.total_steps and not self._out_of_time(
                    session_start):
                started = time.perf_counter()
                batch, rollout = self.rollout()
                update = ppo_update(self.agent.actor, self.agent.critic, self.optimizers,
                                    batch, self.ppo,
                                    train_actor=self.ppo.trains_actor(self.iteration))
                self.iteration += 1
                row = {'iteration': self.iteration, 'rollout': rollout, 'ppo': update,
                       'iteration_s': time.perf_counter() - started}
                evaluated = self.iteration % settings.eval_every == 0
                if evaluated:
                    row.update(self.evaluate())
                    self.begin_episodes()
                self.wall_s = wall_before + time.perf_counter() - session_start
                self._log(row, writer)
                self._save(best_changed=evaluated and self._improves(row['val_success']))
                bar.update(min(self.env_steps, settings.total_steps) - bar.n)
                bar.set_postfix(val=self.best, rollout_sr=rollout['success_rate'])
        except BaseException:
            self._close(bar, writer)
            if any('val_success' in r for r in self.history):
                self._write_summary()  # an interrupted run (Ctrl-C) keeps its record too
            raise
        self._close(bar, writer)
        return self._write_summary()  # the run starts with a validation, so there is one

    def _close(self, bar: tqdm, writer: SummaryWriter) -> None:
        """Close the progress bar, the TensorBoard writer and the worker environments."""
        bar.close()
        writer.close()
        self.envs.close()

    def _out_of_time(self, session_start: float) -> bool:
        """Return whether the session's time limit has passed."""
        limit = self.settings.time_limit_min
        return limit is not None and time.perf_counter() - session_start > limit * 60

    def begin_episodes(self) -> None:
        """Reset every environment into a fresh training episode."""
        seed = TRAIN_SEED_FLOOR + self.settings.seed * 7919 + self.iteration
        self.obs, _ = self.envs.reset(seed=seed)
        self.base.reset()
        self.base_action = self.base.act(self.obs)
        self.episode_start = np.ones(self.settings.envs, dtype=bool)
        self.reward_scale.returns[:] = 0.0
        self.tracker.restart()

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

    @torch.no_grad()
    def evaluate(self) -> dict:
        """
        Run the deterministic policy once on each validation seed; return its success rate.

        The per-seed :class:`EpisodeResult` rows go to ``validation.jsonl`` in
        the evaluation JSON of ``vrl eval``; an episode's ``wall_s`` is the time
        from its batch's start to its end (a batch's episodes run in parallel).
        """
        settings, n = self.settings, self.settings.envs
        seeds = list(range(settings.val_seed_start,
                           settings.val_seed_start + settings.val_episodes))
        results: list[EpisodeResult] = []
        started = time.perf_counter()
        for first in range(0, len(seeds), n):
            results += self._validation_batch(seeds[first:first + n])
        report = summarise_episodes(settings.task, 'validation', settings.val_seed_start,
                                    results)
        with (self.out_dir / VALIDATION).open('a') as lines:
            lines.write(json.dumps({'iteration': self.iteration, 'env_steps': self.env_steps,
                                    **report}) + '\n')
        return {'val_success': report['success_rate'],
                'val_length': report['mean_episode_length'],
                'val_seconds': time.perf_counter() - started}

    def _validation_batch(self, seeds: list[int]) -> list[EpisodeResult]:
        """Run one deterministic episode per seed in parallel (unused envs repeat the last)."""
        n = self.settings.envs
        obs, _ = self.envs.reset(seed=seeds + [seeds[-1]] * (n - len(seeds)))
        self.base.reset()
        started = time.perf_counter()
        running = np.ones(n, dtype=bool)
        outcome = np.zeros(n, dtype=bool)
        length = np.zeros(n, dtype=np.int64)
        returns, ended_at = np.zeros(n), np.zeros(n)
        while running.any():
            base = self.space.action_norm(self.base.act(obs), obs)
            state = self.space.state_norm(obs)
            residual, _ = self.agent.actor.act(state, base, deterministic=True)
            action = self.space.action_raw(self.agent.actor.combine(base, residual), obs)
            obs, reward, terminated, truncated, _ = self.envs.step(action)
            length += running
            returns += np.where(running, reward, 0.0)
            outcome |= running & terminated
            ended_at[running] = time.perf_counter() - started
            running &= ~(terminated | truncated)
            self.base.reset(terminated | truncated)
        return [EpisodeResult(seed, bool(outcome[i]), int(length[i]), float(returns[i]),
                              float(ended_at[i])) for i, seed in enumerate(seeds)]

    def _improves(self, score: float) -> bool:
        """Return whether ``score`` ties or beats the best so far (ties favour later)."""
        return self.best is None or score >= self.best

    def _log(self, row: dict, writer: SummaryWriter) -> None:
        """Append a metrics line, TensorBoard scalars and redraw the learning curve."""
        row = {'env_steps': self.env_steps, 'wall_s': self.wall_s, **row}
        self.history.append(row)
        with (self.out_dir / METRICS).open('a') as metrics:
            metrics.write(json.dumps(row) + '\n')
        for name, value in flatten_mapping(row, '/').items():
            if value is not None and name not in ('env_steps', 'iteration'):
                writer.add_scalar(name, value, self.env_steps)
        writer.flush()
        start = self.settings.init_residual
        plot_learning_curve(self.history, self.out_dir / CURVE_PLOT, self.settings.task,
                            'frozen BC' if start is None else f'start: {start}')

    def _save(self, best_changed: bool) -> None:
        """Write the latest residual and training state; the best residual when it improved."""
        if best_changed:
            self.best = self.history[-1].get('val_success', self.best)
            self.agent.save(self.out_dir / RESIDUAL)
        self.agent.save(self.out_dir / RESIDUAL_LAST)
        state = {'actor_optimizer': self.optimizers.actor.state_dict(),
                 'critic_optimizer': self.optimizers.critic.state_dict(),
                 'reward_rms': {k: float(getattr(self.reward_scale.return_rms, k))
                                for k in ('mean', 'var', 'count')},
                 'env_steps': self.env_steps, 'iteration': self.iteration,
                 'wall_s': self.wall_s, 'best': self.best, 'history': self.history,
                 'torch_rng': torch.get_rng_state()}
        tmp = self.out_dir / f'.{TRAINING_STATE}.tmp'
        torch.save(state, tmp)
        os.replace(tmp, self.out_dir / TRAINING_STATE)

    def _write_summary(self) -> dict:
        """Write summary.json: baseline, best validation success and when the kept one was."""
        evaluated = [r for r in self.history if 'val_success' in r]
        # Ties go to the later residual, as in _improves: the one saved in residual/.
        best_row = max(evaluated, key=lambda r: (r['val_success'], r['env_steps']))
        rates = [r['rollout']['steps_per_s'] for r in self.history if 'rollout' in r]
        summary = {
            'task': self.settings.task, 'base': self.settings.base,
            'env_steps': self.env_steps, 'iterations': self.iteration, 'wall_s': self.wall_s,
            'baseline_val_success': evaluated[0]['val_success'],
            'best_val_success': best_row['val_success'],
            'best_at_env_steps': best_row['env_steps'], 'best_at_wall_s': best_row['wall_s'],
            'val_seeds': [self.settings.val_seed_start,
                          self.settings.val_seed_start + self.settings.val_episodes - 1],
            'rollout_steps_per_s': float(np.median(rates)) if rates else None,
            'date': _now(), 'machine': machine_description()}
        if self.settings.init_residual is not None:
            summary['init_residual'] = self.settings.init_residual
            summary['init_training'] = prior_training(self.settings.init_residual)
        write_json(summary, self.out_dir / SUMMARY)
        return summary


def prior_training(name: str) -> Optional[dict]:
    """Return how a residual run or shipped residual was trained (its summary or card)."""
    run = resolve_run(name)[0].parent
    if (run / SUMMARY).is_file():
        return json.loads((run / SUMMARY).read_text())
    card = run / MODEL_CARD
    return json.loads(card.read_text()).get('training') if card.is_file() else None


def plot_learning_curve(history: list[dict], out_path: Path, task: str,
                        start_label: str = 'frozen BC') -> None:
    """Draw validation and rollout success, and rollout return, against env steps."""
    figure = Figure(figsize=(10, 4), dpi=100)
    success_axes, return_axes = figure.subplots(1, 2)
    evaluated = [r for r in history if 'val_success' in r]
    if evaluated:
        success_axes.axhline(evaluated[0]['val_success'], color='grey', linestyle='--',
                             label=f'{start_label} (validation)')
        success_axes.plot([r['env_steps'] for r in evaluated],
                          [r['val_success'] for r in evaluated], marker='o',
                          label='BC + residual (validation, deterministic)')
    rollouts = [r for r in history if r.get('rollout', {}).get('success_rate') is not None]
    success_axes.plot([r['env_steps'] for r in rollouts],
                      [r['rollout']['success_rate'] for r in rollouts], alpha=0.5,
                      label='training rollouts (exploring)')
    success_axes.set_ylim(-0.02, 1.02)
    success_axes.set_ylabel('success rate')
    return_axes.plot([r['env_steps'] for r in rollouts],
                     [r['rollout']['return'] for r in rollouts])
    return_axes.set_ylabel('mean episode return (rollouts)')
    for axes in (success_axes, return_axes):
        axes.set_xlabel('environment steps')
        axes.grid(True, alpha=0.3)
    success_axes.legend(loc='upper left', fontsize=8)
    figure.suptitle(f'ResiP residual PPO on {task}')
    figure.tight_layout()
    tmp = out_path.with_name(f'.{out_path.name}.tmp')
    figure.savefig(tmp, format='png')
    tmp.replace(out_path)


def _now() -> str:
    """Return the UTC time as ISO 8601 seconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def train_residual(out_dir: PathLike, settings: ResidualTrainSettings,
                   residual_settings: Optional[Mapping[str, Any]] = None,
                   ppo: Optional[PPOConfig] = None, resume: bool = False,
                   progress: bool = True, asynchronous: bool = True) -> dict:
    """Train (or resume) a residual run in ``out_dir``; return its summary (module doc)."""
    trainer = ResidualTrainer(Path(out_dir), settings, dict(residual_settings or {}),
                              ppo or PPOConfig(), resume, asynchronous)
    return trainer.run(progress)
