"""
Off-policy fine-tuning of a ``resfit`` run from live episodes: the real-arm path of ResFiT.

:class:`OnlineResFiTLearner` sits between the policy node and a
:class:`.agent.ResFiTPolicyRunner`, with the same calls as the PPO learner
(:class:`..resip.online_learner.OnlineResidualLearner`): every observation
step it is given the reward that arrived with it, which pays for the previous
step's action (``r_t`` comes with ``o_{t+1}``), then it sends the base's
action plus an exploring residual and opens a new step. A terminal reward
(task success) closes the episode: later observations get the deterministic
action and are not recorded. An episode that ends otherwise (a new
instruction, a reset) is a time limit: its last steps bootstrap from its last
observation. A step whose reward is unusable (:meth:`interrupt`) is dropped
and the steps before it bootstrap from where it began.

The first ``warmup_steps`` recorded steps (counted over sessions) act
without exploration and earn no updates; then gradient updates follow the
data at ``utd`` updates per recorded step (the actor after the run's
critic-only warm-up, as offline), either in a background thread (``updates='background'``:
the control loop never waits on a gradient step; the acting actor takes the
learner's new weights at the next step) or all at once when an episode ends
(``updates='between_episodes'``: nothing competes with the control loop
for the CPU while the arm moves).

Everything needed to go on is written when an episode ends and on
:meth:`close`, so a stopped session resumes where it was when the node is
started again with the same output folder. Output folder (a complete
``resfit`` run, so ``vrl eval --policy OUT`` works)::

    OUT/config.json, OUT/checkpoint/   copied from the starting run
    OUT/residual/                      the actor and critics after the latest update
    OUT/online_state.pt                optimisers, targets, RNG, counters
    OUT/replay.npz                     the transitions collected so far
    OUT/episodes.jsonl                 one line per episode (return, length, success, updates)
"""

import json
from pathlib import Path
import shutil
import threading
from typing import Optional

import numpy as np
import torch
from visual_rl_stack.core.checkpoints import atomic_torch_save, load_training_state
from visual_rl_stack.core.devices import limit_thread_torch
from visual_rl_stack.core.rewards import SPARSE
from visual_rl_stack.core.run_layout import CHECKPOINT, PathLike, RESIDUAL, RUN_CONFIG
from visual_rl_stack.residual_policy.diffusion_bc.batched_base import BatchedBasePolicy

from .agent import ResFiTAgent, ResFiTPolicyRunner, ResFiTStep
from .config import UPDATE_MODES
from .demos import demo_buffer
from .learner import ResFiTLearner
from .replay import NStepAssembler, ReplayBuffer

STATE_FILE = 'online_state.pt'
REPLAY_FILE = 'replay.npz'
EPISODES = 'episodes.jsonl'


class OnlineResFiTLearner:
    """Collect live transitions and update the residual off-policy (module doc)."""

    def __init__(self, runner: ResFiTPolicyRunner, out_dir: PathLike,
                 updates: str = 'background', utd: Optional[float] = None,
                 demos: Optional[PathLike] = None, seed: int = 0) -> None:
        """
        Prepare ``out_dir`` as a ``resfit`` run, or resume the session saved there.

        ``utd`` overrides the run's updates per step; ``demos`` is a folder of
        demonstration bags mixed into every batch (sparse reward), as offline.
        """
        if not isinstance(runner, ResFiTPolicyRunner):
            raise ValueError('off-policy online fine-tuning needs a resfit run '
                             '(vrl train-residual --algo resfit)')
        if updates not in UPDATE_MODES:
            raise ValueError(f'updates must be one of {", ".join(UPDATE_MODES)}, got {updates!r}')
        if utd is not None and not utd > 0:
            raise ValueError(f'utd must be > 0, got {utd}')
        self.runner, self.mode = runner, updates
        self.out_dir = Path(out_dir)
        config = runner.agent.config
        self.demos = None if demos is None else demo_buffer(
            Path(demos),
            lambda n: BatchedBasePolicy(runner.policy, n, runner.num_inference_steps, seed,
                                        runner.noise_scale, runner.action_steps),
            runner.space, config, SPARSE)
        self.utd = config.utd if utd is None else float(utd)
        self.learner = ResFiTLearner(config, seed)
        self.buffer = ReplayBuffer(config.buffer_size, config.state_dim, config.action_dim)
        self.assembler = NStepAssembler(1, config.n_step, config.gamma, config.state_dim,
                                        config.action_dim)
        self.steps = self.episodes = 0
        self._credit = 0.0
        if (self.out_dir / STATE_FILE).exists():
            self._resume()
        else:
            self._start()
        self.explore = torch.Generator().manual_seed(seed + 1)
        self._open: Optional[ResFiTStep] = None
        self._last: Optional[ResFiTStep] = None
        self._done = False
        self._episode_return, self._episode_length = 0.0, 0
        self._fresh_actor: Optional[dict] = None
        self._lock = threading.Lock()  # the buffer and the update credit
        self._learning = threading.Lock()  # the networks, while updated or saved
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self.error: Optional[BaseException] = None
        self._thread = None
        if self.mode == 'background':
            self._thread = threading.Thread(target=self._update_loop, daemon=True,
                                            name='resfit-online-updates')
            self._thread.start()

    # Starting and resuming ------------------------------------------------------------------

    def _start(self) -> None:
        """Copy the starting run into the output folder; the learner starts from its residual."""
        if (self.out_dir / RESIDUAL).exists():
            raise ValueError(f'{self.out_dir} holds a residual but no {STATE_FILE}; choose '
                             'another output folder')
        run_dir = self.runner.checkpoint.parent
        self.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.runner.checkpoint, self.out_dir / CHECKPOINT)
        shutil.copy2(run_dir / RUN_CONFIG, self.out_dir / RUN_CONFIG)
        self.learner.actor.load_state_dict(self.runner.agent.actor.state_dict())
        self.learner.critic.load_state_dict(self.runner.agent.critic.state_dict())
        self.learner.actor_target.load_state_dict(self.runner.agent.actor.state_dict())
        self.learner.critic_target.load_state_dict(self.runner.agent.critic.state_dict())
        ResFiTAgent.from_learner(self.learner).save(self.out_dir / RESIDUAL)

    def _resume(self) -> None:
        """Load the networks, training state and buffer a previous session saved."""
        agent = ResFiTAgent.from_checkpoint(self.out_dir / RESIDUAL)
        if (agent.config.state_dim, agent.config.action_dim) != (
                self.learner.config.state_dim, self.learner.config.action_dim):
            raise ValueError(f'{self.out_dir} was fine-tuned over another base '
                             f'({agent.config.state_dim} state, {agent.config.action_dim} action '
                             'dims); choose another output folder')
        self.learner.actor.load_state_dict(agent.actor.state_dict())
        self.learner.critic.load_state_dict(agent.critic.state_dict())
        saved = load_training_state(self.out_dir / STATE_FILE)
        self.learner.load_training_state(saved['learner'])
        self.steps, self.episodes = int(saved['steps']), int(saved['episodes'])
        self._credit = float(saved['credit'])
        self.buffer.load(self.out_dir / REPLAY_FILE)
        self.runner.agent.actor.load_state_dict(agent.actor.state_dict())

    # Acting ---------------------------------------------------------------------------------

    def act(self, state: np.ndarray, images: Optional[dict[str, np.ndarray]] = None,
            reward: Optional[float] = None, terminal: bool = False) -> np.ndarray:
        """
        Return the action for this observation; ``reward`` is what the previous action earned.

        ``terminal`` says the previous action ended the episode (success).
        Raises ValueError for a non-finite reward (after :meth:`interrupt`).
        """
        self._raise_update_error()
        if reward is not None and not np.isfinite(reward):
            self.interrupt()
            raise ValueError(f'reward {reward} is not finite; the step is not recorded')
        fresh, self._fresh_actor = self._fresh_actor, None
        if fresh is not None:
            self.runner.agent.actor.load_state_dict(fresh)
        if self._done:
            return self.runner.act_from_observation(state, images)
        warm = self.steps < self.learner.config.warmup_steps  # no exploration before updates
        step = self.runner.act_step(state, images, None if warm else self.explore)
        if self._open is not None and reward is not None:
            self._record(self._open, float(reward), terminal, step)
            self._done = terminal
            if terminal:
                self._open = None
                return self.runner.act_from_observation(state, images)
        self._open, self._last = step, step
        return step.action

    def _record(self, step: ResFiTStep, reward: float, terminal: bool, after: ResFiTStep) -> None:
        """Store the transitions the step ``step -> after`` completes; earn their updates."""
        batch = self.assembler.add(step.state[None], step.base[None], step.sent[None],
                                   np.array([reward]), np.array([terminal]), np.array([False]),
                                   after.state[None], after.base[None])
        self._episode_return += reward
        self._episode_length += 1
        with self._wake:
            self.buffer.add(batch)
            self.steps += 1
            if self.steps > self.learner.config.warmup_steps and (
                    len(self.buffer) or self.demos is not None):
                self._credit += self.utd
            self._wake.notify()

    def interrupt(self) -> None:
        """Drop the open step (its reward is lost); the steps before it bootstrap from it."""
        if self._open is not None:
            batch = self.assembler.flush(0, self._open.state, self._open.base)
            with self._lock:
                self.buffer.add(batch)
        self._open = None

    def end_episode(self) -> Optional[dict]:
        """Close the episode (time limit unless it succeeded), save, and return its stats."""
        if self._last is not None and not self._done:
            batch = self.assembler.flush(0, self._last.state, self._last.base)
            with self._lock:
                self.buffer.add(batch)
        self.assembler.clear()
        recorded = self._episode_length
        if recorded:
            if self.mode == 'between_episodes':
                self._run_earned_updates()
            self.episodes += 1
        stats = {'episode': self.episodes, 'steps': self.steps, 'return': self._episode_return,
                 'length': recorded, 'success': self._done, 'updates': self.learner.updates,
                 'buffer': len(self.buffer)}
        self._open, self._last, self._done = None, None, False
        self._episode_return, self._episode_length = 0.0, 0
        if not recorded:
            return None
        self.save()
        with (self.out_dir / EPISODES).open('a') as log:
            log.write(json.dumps(stats) + '\n')
        return stats

    @property
    def updates(self) -> int:
        """Return the gradient updates made so far (over every session)."""
        return self.learner.updates

    @staticmethod
    def describe(stats: dict) -> str:
        """Return one log line for the stats :meth:`end_episode` returned."""
        outcome = 'success' if stats['success'] else 'no success'
        return (f'episode {stats["episode"]}: {stats["length"]} steps, {outcome}, return '
                f'{stats["return"]:.3f}; {stats["steps"]} steps and {stats["updates"]} '
                f'updates in all, buffer {stats["buffer"]}')

    # Learning -------------------------------------------------------------------------------

    def _update_loop(self) -> None:
        """Run earned updates as data arrives until :meth:`close` (background mode)."""
        limit_thread_torch(1)  # the control thread keeps its own pool: no contention for it
        try:
            while True:
                with self._wake:
                    while not self._stop and self._credit < 1:
                        self._wake.wait(timeout=1.0)
                    if self._stop:
                        return
                self._one_update()
        except BaseException as error:  # noqa: BLE001 - surfaced in the control thread
            self.error = error

    def _run_earned_updates(self) -> None:
        """Run every update earned so far, now (between-episodes mode)."""
        while self._credit >= 1:
            self._one_update()

    def _one_update(self) -> None:
        """Sample under the data lock, update, and hand new actor weights to the acting side."""
        with self._learning:
            with self._lock:
                batch = self.learner.sample(self.buffer, self.demos)
                self._credit -= 1
            stats = self.learner.update(batch)
            if 'actor_loss' in stats:
                self._fresh_actor = {k: v.clone()
                                     for k, v in self.learner.actor.state_dict().items()}

    def _raise_update_error(self) -> None:
        """Raise the background thread's failure, once, in the caller's thread."""
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError(f'background update failed: {error}') from error

    # Saving ---------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the networks, training state and buffer (consistent with each other)."""
        with self._learning, self._lock:
            ResFiTAgent.from_learner(self.learner).save(self.out_dir / RESIDUAL)
            self.buffer.save(self.out_dir / REPLAY_FILE)
            atomic_torch_save({'learner': self.learner.training_state(), 'steps': self.steps,
                               'episodes': self.episodes, 'credit': self._credit},
                              self.out_dir / STATE_FILE)

    def close(self) -> None:
        """Stop the update thread and save: nothing collected is lost."""
        if self._thread is not None:
            with self._wake:
                self._stop = True
                self._wake.notify()
            self._thread.join()
            self._thread = None
        self.save()
