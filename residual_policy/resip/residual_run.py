"""
What every residual learner's run shares: the frozen base, the run folder, validation and logs.

A residual run trains a correction on top of a frozen diffusion BC base
(PPO in :mod:`.train_residual`, the off-policy learner in
:mod:`..resfit.trainer`). :class:`ResidualRun` owns everything that does not
depend on the learning rule:

- the base (a shipped model or BC run for the same task, copied into the run),
  the base's normalised units and its batched receding-horizon execution;
- the worker environments with the chosen reward, and fresh training episodes
  (seeds above :data:`.env.TRAIN_SEED_FLOOR`);
- the run folder: ``config.json`` (sessions appended on resume), the guard
  against overwriting a run, the check that a resumed run keeps its settings,
  ``metrics.jsonl`` and TensorBoard (:class:`~visual_rl_stack.core.run_logs.RunLog`),
  ``learning_curve.png``, ``validation.jsonl``, the training state written
  atomically and ``summary.json``;
- validation: the deterministic policy once on each validation seed, as
  :class:`~visual_rl_stack.evaluation.episodes.EpisodeResult` rows, keeping the
  best residual in ``RUN/residual/``.

A learner subclass supplies its agent, one training iteration (collection
and updates; its row's ``rollout`` carries the episode stats), the
deterministic action for validation and what its training state adds.
"""

from dataclasses import asdict
import json
from pathlib import Path
import shutil
import sys
import time
from typing import Any, Optional

from matplotlib.figure import Figure
import numpy as np
import torch
from tqdm import tqdm
from visual_rl_stack.core.checkpoints import atomic_torch_save, load_training_state
from visual_rl_stack.core.policy import resolve_run
from visual_rl_stack.core.records import machine_description, now_iso, write_json
from visual_rl_stack.core.rewards import canonical_reward, KAGI
from visual_rl_stack.core.run_layout import (check_resumed_settings, CHECKPOINT, CURVE_PLOT,
                                             MODEL_CARD, RESIDUAL, RESIDUAL_LAST, RUN_CONFIG,
                                             SUMMARY, TRAINING_STATE, training_state_to_use,
                                             VALIDATION)
from visual_rl_stack.core.run_logs import RunLog
from visual_rl_stack.evaluation.episodes import EpisodeResult, summarise_episodes
from visual_rl_stack.residual_policy.diffusion_bc.batched_base import BatchedBasePolicy
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import DiffusionPolicy

from .agent import NormalisedSpace
from .config import ResidualTrainSettings
from .env import make_residual_envs, TRAIN_SEED_FLOOR


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


class ResidualRun:
    """The shared part of a residual training run (module doc); subclasses learn."""

    #: Policy kind written to config.json (opens the run through the registry).
    kind = 'residual'
    #: How plots and logs name the learner.
    title = 'residual'
    #: Settings a resumed run may change: how long it trains.
    RESUMABLE = ('total_steps', 'time_limit_min')

    def __init__(self, out_dir: Path, settings: ResidualTrainSettings, resume: bool,
                 asynchronous: bool = True):
        """Load the base, set up or resume the run folder, start the environments."""
        settings.check()
        self.out_dir, self.settings = out_dir, settings
        state_path = training_state_to_use(out_dir, resume, RESIDUAL)
        saved = load_training_state(state_path) if resume else None
        self.base_checkpoint, self.base_config = self._base(settings)
        self.policy = DiffusionPolicy.from_checkpoint(self.base_checkpoint)
        self.space = NormalisedSpace(self.policy)
        self.base_action_steps = self.policy.config.executed_steps(settings.base_action_steps)
        self.env_steps, self.iteration, self.wall_s = 0, 0, 0.0
        self.best: Optional[float] = None
        self.history: list[dict] = []
        torch.manual_seed(settings.seed)
        self.build_learner(saved)
        if saved is not None:
            self._check_same_settings()
            self._restore(saved)
        self._write_run_config(resume)
        self.envs = make_residual_envs(settings.task, settings.envs,
                                       self.base_config.get('action_mode', 'delta'),
                                       settings.reward, asynchronous=asynchronous,
                                       reward_options=reward_options(settings, self.gamma()))
        self.rollout_steps = (settings.rollout_steps
                              or int(self.envs.get_attr('max_episode_steps')[0]))
        self.base = BatchedBasePolicy(self.policy, settings.envs,
                                      settings.base_inference_steps, settings.seed,
                                      settings.base_noise_scale, self.base_action_steps)
        self.tracker = EpisodeTracker(settings.envs)

    # What a learner supplies ----------------------------------------------------------------

    def build_learner(self, saved: Optional[dict]) -> None:
        """Create (or, with ``saved``, reload from ``residual_last``) the agent and optimisers."""
        raise NotImplementedError

    def learner_configs(self) -> dict[str, dict]:
        """Return the learner's config sections of config.json (e.g. ``{'ppo': ...}``)."""
        raise NotImplementedError

    def same_learner_configs(self, config: dict) -> bool:
        """Return whether a resumed run's saved config.json has this run's learner settings."""
        raise NotImplementedError

    def gamma(self) -> float:
        """Return the learner's discount (a potential-shaped reward pays with it)."""
        raise NotImplementedError

    def train_iteration(self) -> dict:
        """Collect and learn for one iteration; return its metrics row (``rollout`` stats)."""
        raise NotImplementedError

    def validation_action(self, state_norm: torch.Tensor, base_norm: torch.Tensor
                          ) -> torch.Tensor:
        """Return the deterministic normalised action sent for these rows."""
        raise NotImplementedError

    def save_agent(self, path: Path) -> None:
        """Write the agent's checkpoint folder to ``path``."""
        raise NotImplementedError

    def learner_state(self) -> dict:
        """Return the learner's part of the training state (optimisers, scalers)."""
        raise NotImplementedError

    def restore_learner_state(self, saved: dict) -> None:
        """Restore :meth:`learner_state` output."""
        raise NotImplementedError

    # The run folder ---------------------------------------------------------------------------

    def _base(self, settings: ResidualTrainSettings) -> tuple[Path, dict]:
        """Return the base checkpoint and run config; refuse a base for another task."""
        checkpoint, run_config = resolve_run(settings.base)
        run_config = run_config or {}
        if run_config.get('task') not in (None, settings.task):
            raise ValueError(f'base {settings.base} was trained on {run_config["task"]!r}, '
                             f'not {settings.task!r}')
        if (checkpoint.parent / RESIDUAL).is_dir():
            raise ValueError(f'base {settings.base} is itself a residual run; '
                             'train on the BC run it refines')
        return checkpoint, run_config

    def _check_same_settings(self) -> None:
        """Refuse to resume with other settings than the run was started with."""
        config = json.loads((self.out_dir / RUN_CONFIG).read_text())
        defaults = asdict(ResidualTrainSettings(task='', base=''))  # for keys older runs lack
        saved = {**defaults, **config['settings'], 'reward': canonical_reward(
            config['settings'].get('reward', defaults['reward']))}
        check_resumed_settings(self.out_dir, saved, self.settings, self.RESUMABLE,
                               () if self.same_learner_configs(config) else ('learner settings',))

    def _restore(self, saved: dict) -> None:
        """Continue counters, the learner's state and the RNG from a training state."""
        self.restore_learner_state(saved)
        self.env_steps, self.iteration = saved['env_steps'], saved['iteration']
        self.wall_s, self.best = saved['wall_s'], saved['best']
        self.history = saved['history']
        torch.set_rng_state(saved['torch_rng'])

    def _write_run_config(self, resume: bool) -> None:
        """Copy the base into the run and write config.json (sessions appended on resume)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            shutil.copytree(self.base_checkpoint, self.out_dir / CHECKPOINT, dirs_exist_ok=True)
        config_path = self.out_dir / RUN_CONFIG
        previous = json.loads(config_path.read_text()) if resume else {}
        session = {'date': now_iso(), 'from_env_step': self.env_steps,
                   'command': ' '.join(sys.argv), 'machine': machine_description()}
        config = {
            'kind': self.kind, 'task': self.settings.task,
            'action_mode': self.base_config.get('action_mode', 'delta'),
            'state_labels': self.base_config.get('state_labels'), 'obs_mode': 'state',
            'base': self.settings.base, 'base_run': self.base_config,
            'base_inference_steps': self.settings.base_inference_steps,
            'base_noise_scale': self.settings.base_noise_scale,
            'base_action_steps': self.base_action_steps,
            'settings': asdict(self.settings), **self.learner_configs(),
            'sessions': previous.get('sessions', []) + [session]}
        write_json(config, config_path)

    # The loop ---------------------------------------------------------------------------------

    def run(self, progress: bool = True) -> dict:
        """Train until ``total_steps`` env steps (or the time limit); return the summary."""
        settings = self.settings
        # A run resumed before its first iteration starts over from its baseline validation.
        log = RunLog(self.out_dir, 'env_steps', skip=('iteration',),
                     resumed_at=self.env_steps if self.iteration else None)
        bar = tqdm(total=settings.total_steps, initial=min(self.env_steps, settings.total_steps),
                   desc=f'{self.title} {settings.task}', unit='step', disable=not progress)
        session_start = time.perf_counter()
        wall_before = self.wall_s
        try:
            if self.iteration == 0:
                self._log({'iteration': 0, **self.evaluate()}, log)
                self._save(best_changed=True)
            self.begin_episodes()
            while self.env_steps < settings.total_steps and not self._out_of_time(
                    session_start):
                started = time.perf_counter()
                row = self.train_iteration()
                self.iteration += 1
                row = {'iteration': self.iteration, **row,
                       'iteration_s': time.perf_counter() - started}
                evaluated = self.iteration % settings.eval_every == 0
                if evaluated:
                    row.update(self.evaluate())
                    self.begin_episodes()
                self.wall_s = wall_before + time.perf_counter() - session_start
                self._log(row, log)
                self._save(best_changed=evaluated and self._improves(row['val_success']))
                bar.update(min(self.env_steps, settings.total_steps) - bar.n)
                bar.set_postfix(val=self.best, rollout_sr=row['rollout']['success_rate'])
        except BaseException:
            self._close(bar, log)
            if any('val_success' in r for r in self.history):
                self._write_summary(log)  # an interrupted run (Ctrl-C) keeps its record too
            raise
        self._close(bar, log)
        return self._write_summary(log)  # the run starts with a validation, so there is one

    def _close(self, bar: tqdm, log: RunLog) -> None:
        """Close the progress bar, the TensorBoard writer and the worker environments."""
        bar.close()
        log.close()
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
        self.tracker.restart()

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
            action = self.space.action_raw(
                self.validation_action(self.space.state_norm(obs), base), obs)
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

    def _log(self, row: dict, log: RunLog) -> None:
        """Append a metrics line, TensorBoard scalars and redraw the learning curve."""
        row = {'env_steps': self.env_steps, 'wall_s': self.wall_s, **row}
        self.history.append(row)
        log.log(row)
        start = self.settings.init_residual
        plot_learning_curve(self.history, self.out_dir / CURVE_PLOT,
                            f'{self.title} on {self.settings.task}',
                            'frozen BC' if start is None else f'start: {start}')

    def _save(self, best_changed: bool) -> None:
        """Write the latest residual and training state; the best residual when it improved."""
        if best_changed:
            self.best = self.history[-1].get('val_success', self.best)
            self.save_agent(self.out_dir / RESIDUAL)
        self.save_agent(self.out_dir / RESIDUAL_LAST)
        state = {**self.learner_state(),
                 'env_steps': self.env_steps, 'iteration': self.iteration,
                 'wall_s': self.wall_s, 'best': self.best, 'history': self.history,
                 'torch_rng': torch.get_rng_state()}
        atomic_torch_save(state, self.out_dir / TRAINING_STATE)

    def _write_summary(self, log: RunLog) -> dict:
        """Write summary.json: baseline, best validation success and when the kept one was."""
        evaluated = [r for r in self.history if 'val_success' in r]
        # Ties go to the later residual, as in _improves: the one saved in residual/.
        best_row = max(evaluated, key=lambda r: (r['val_success'], r['env_steps']))
        rates = [r['rollout']['steps_per_s'] for r in self.history if 'rollout' in r]
        summary = {
            'task': self.settings.task, 'base': self.settings.base, 'algo': self.kind,
            'env_steps': self.env_steps, 'iterations': self.iteration, 'wall_s': self.wall_s,
            'baseline_val_success': evaluated[0]['val_success'],
            'best_val_success': best_row['val_success'],
            'best_at_env_steps': best_row['env_steps'], 'best_at_wall_s': best_row['wall_s'],
            'val_seeds': [self.settings.val_seed_start,
                          self.settings.val_seed_start + self.settings.val_episodes - 1],
            'rollout_steps_per_s': float(np.median(rates)) if rates else None}
        if self.settings.init_residual is not None:
            summary['init_residual'] = self.settings.init_residual
            summary['init_training'] = prior_training(self.settings.init_residual)
        return log.write_summary(summary)


def reward_options(settings: ResidualTrainSettings, gamma: float) -> dict[str, Any]:
    """Return what the kagi reward's factory gets from the settings (nothing for the others)."""
    if settings.reward != KAGI:
        return {}
    return {'backend': settings.reward_backend, 'model': settings.reward_model,
            'potential': settings.reward_shaping == 'potential', 'gamma': gamma}


def prior_training(name: str) -> Optional[dict]:
    """Return how a residual run or shipped residual was trained (its summary or card)."""
    run = resolve_run(name)[0].parent
    if (run / SUMMARY).is_file():
        return json.loads((run / SUMMARY).read_text())
    card = run / MODEL_CARD
    return json.loads(card.read_text()).get('training') if card.is_file() else None


def plot_learning_curve(history: list[dict], out_path: Path, title: str,
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
    figure.suptitle(title)
    figure.tight_layout()
    tmp = out_path.with_name(f'.{out_path.name}.tmp')
    figure.savefig(tmp, format='png')
    tmp.replace(out_path)
