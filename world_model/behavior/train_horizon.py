"""
Training the world-model agent: real rollouts alternating with learning in imagination.

Start: the world model's MAE is copied in and frozen; its RSSM continues to
learn; the demonstrations are embedded and relabelled with the agent's
reward (``planner_stages`` or ``sparse``, :mod:`..dynamics.sequences`); an RSSM
pretrained on another reward gets a fresh reward head, so an agent never
hears of a reward it is not trained on. The actor first clones the
demonstrations for ``bc_steps``.

Then every iteration: ``collect_steps`` steps of every worker with the
exploring actor (episodes go to the replay buffer beside the
demonstrations), and ``updates`` steps each of the RSSM (on replay windows)
and of the actor-critic (imagining from ``imagine_starts`` of those windows'
posteriors, with behaviour cloning on demonstration windows). Every ``eval_every``
iterations the deterministic actor runs ``eval_episodes`` episodes on
validation seeds (from ``eval_seed_start``, disjoint from the training seeds
and from the evaluation seeds >= 1000). The run folder gets
``metrics.jsonl``, TensorBoard, ``curves.png``, the best agent (by
validation success, then the latest), ``summary.json`` and, after every
evaluation, what ``--resume`` continues from; a resumed run drops the metrics
logged after that (:class:`~visual_rl_stack.core.run_logs.RunLog`). A new run
refuses a folder that already holds a run, and a resumed one refuses other
settings than it was started with (:mod:`visual_rl_stack.core.run_layout`), so
no run mixes two runs' files.
"""

from dataclasses import asdict
import json
from pathlib import Path
import shutil
import time
from typing import Optional

from matplotlib.figure import Figure
import numpy as np
import torch
from tqdm import tqdm
from visual_rl_stack.core.checkpoints import atomic_torch_save, load_training_state
from visual_rl_stack.core.records import machine_description, write_json
from visual_rl_stack.core.rewards import canonical_reward
from visual_rl_stack.core.run_layout import (check_resumed_settings, CHECKPOINT, RUN_CONFIG,
                                             TRAINING_STATE, training_state_to_use)
from visual_rl_stack.core.run_logs import RunLog
from visual_rl_stack.data.dataset import episode_bags
from visual_rl_stack.sim.vector_env import TRAIN_SEED_FLOOR

from .actor_critic import ActorCritic, AgentNets, BehaviorConfig
from .agent import HorizonAgent, load_agent, POLICY_KIND, save_agent
from .env import make_view_envs
from ..dynamics.rssm import RSSM_DIR, State
from ..dynamics.sequences import demo_sequences, EpisodeSequence, SequenceBuffer
from ..dynamics.training import rssm_update, save_rssm
from ..mae.model import MAE_DIR
from ..run_folder import load_world_model
from ..settings import HorizonTrainSettings

REPLAY_FILE = 'replay.npz'
LAST_CHECKPOINT = 'checkpoint_last'


def imagination_horizon(key_horizon: int, override: Optional[int]) -> int:
    """Return the imagination horizon: the key-horizon, kept within [5, 15] steps."""
    return override if override is not None else int(np.clip(key_horizon, 5, 15))


class Collector:
    """Steps the worker envs with the agent and cuts their steps into episodes."""

    def __init__(self, envs, agent: HorizonAgent, seed: int):
        """Reset the workers on training seeds from ``seed`` and open one episode each."""
        self.envs, self.agent = envs, agent
        self.obs, _ = envs.reset(seed=TRAIN_SEED_FLOOR + seed)
        agent.restart(np.ones(envs.num_envs, dtype=bool))
        self.open: list[dict[str, list]] = [self._fresh() for _ in range(envs.num_envs)]
        self.returns: list[float] = []
        self.successes: list[bool] = []

    @staticmethod
    def _fresh() -> dict[str, list]:
        """Return an empty episode record."""
        return {'embeds': [], 'actions': [], 'rewards': []}

    def collect(self, steps: int, buffer: SequenceBuffer) -> int:
        """Step every worker ``steps`` times; finished episodes go to ``buffer``."""
        for _ in range(steps):
            actions = self.agent.act(self.obs['images'], self.obs['state'], explore=True)
            embeds = self.agent.last_embeds
            self.obs, rewards, terminated, truncated, _ = self.envs.step(actions)
            for i in range(self.envs.num_envs):
                record = self.open[i]
                record['embeds'].append(embeds[i])
                record['actions'].append(actions[i])
                record['rewards'].append(float(rewards[i]))
                if terminated[i] or truncated[i]:
                    # Same-step autoreset: infos are already the next episode's; a task
                    # terminates on success alone.
                    self._finish(i, bool(terminated[i]), buffer)
            self.agent.restart(np.logical_or(terminated, truncated))
        return steps * self.envs.num_envs

    def _finish(self, i: int, success: bool, buffer: SequenceBuffer) -> None:
        """Close worker ``i``'s episode into the buffer (it ended in success or at the limit)."""
        record, self.open[i] = self.open[i], self._fresh()
        continues = np.ones(len(record['rewards']), np.float32)
        continues[-1] = 0.0 if success else 1.0
        buffer.add(EpisodeSequence(np.stack(record['embeds']), np.stack(record['actions']),
                                   np.asarray(record['rewards'], np.float32), continues,
                                   success, demo=False))
        self.returns.append(float(np.sum(record['rewards'])))
        self.successes.append(success)


def evaluate_agent(envs, agent: HorizonAgent, episodes: int, seed_start: int) -> float:
    """Return the deterministic actor's success rate on ``episodes`` consecutive seeds."""
    n, successes, seed = envs.num_envs, [], seed_start
    while len(successes) < episodes:
        obs, _ = envs.reset(seed=[seed + i for i in range(n)])
        seed += n
        agent.restart(np.ones(n, dtype=bool))
        live, won = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
        while live.any():
            actions = agent.act(obs['images'], obs['state'], explore=False)
            obs, _, terminated, truncated, _ = envs.step(actions)
            won |= live & terminated  # a task terminates on success alone
            live &= ~(terminated | truncated)
        successes += won.tolist()
    return float(np.mean(successes[:episodes]))


class HorizonTrainer:
    """One training run of the world-model agent (module doc)."""

    #: Settings a resumed run may change: how long it trains and on how many threads.
    RESUMABLE = ('env_steps', 'time_limit_min', 'threads')

    def __init__(self, settings: HorizonTrainSettings, out_dir: Path, resume: bool = False,
                 show_progress: bool = True):
        """Prepare the run folder, the models, the demonstrations and the optimisers."""
        self.settings, self.out_dir, self.show_progress = settings, out_dir, show_progress
        self.resumed = resume
        s = settings
        state_path = training_state_to_use(out_dir, resume, RUN_CONFIG)
        if resume:
            saved = json.loads((out_dir / RUN_CONFIG).read_text())['settings']
            check_resumed_settings(out_dir, {**saved, 'reward': canonical_reward(saved['reward'])},
                                   s, self.RESUMABLE)
        torch.manual_seed(s.seed)
        torch.set_num_threads(s.threads)
        self.rng = np.random.default_rng(s.seed)
        source = Path(s.world_model)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            for part in (MAE_DIR, RSSM_DIR):
                shutil.copytree(source / part, out_dir / part, dirs_exist_ok=True)
        self.world = load_world_model(out_dir)
        if self.world.task != s.task:
            raise ValueError(f'the world model {source} was trained on {self.world.task!r}, '
                             f'not {s.task!r}')
        if self.world.reward != s.reward and not resume:
            self.world.rssm.reset_reward_head()
        self.data = json.loads((source / RUN_CONFIG).read_text())['settings']['data']
        demos, _ = demo_sequences(episode_bags(Path(self.data)), s.task, self.world.embedder,
                                  s.reward, show_progress)
        self.buffer = SequenceBuffer(self.world.normalizer)
        for demo in demos:
            self.buffer.add(demo)
        self.length = min(s.length, min(len(d) for d in demos))
        horizon = imagination_horizon(self.world.key_horizon, s.horizon)
        config = BehaviorConfig(self.world.rssm.config.feature_size, horizon=horizon,
                                entropy=s.entropy, bc_weight=s.bc_weight)
        self.nets = load_agent(out_dir / LAST_CHECKPOINT) if resume else AgentNets(config)
        self.learner = ActorCritic(self.nets)
        self.model_opt = torch.optim.Adam(self.world.rssm.parameters(), lr=3e-4, eps=1e-5)
        self.rows: list[dict] = []
        self.env_steps, self.iteration, self.best = 0, 0, -1.0
        if resume:
            self._restore(load_training_state(state_path))
        else:
            write_json({'kind': POLICY_KIND, 'task': s.task, 'settings': asdict(s),
                        'views': list(self.world.embedder.views),
                        'image_size': self.world.embedder.image_size,
                        'behavior': config.to_dict(), 'demonstrations': self.data,
                        'machine': machine_description()}, out_dir / RUN_CONFIG)

    def _demo_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return posterior features and actions of demonstration windows."""
        batch = self.buffer.sample(self.settings.batch, self.length, self.rng, demo=True)
        with torch.no_grad():
            posterior, _ = self.world.rssm.observe(batch['embeds'], batch['prev_actions'])
        return posterior.features.flatten(0, 1), batch['actions'].flatten(0, 1)

    def pretrain_actor(self) -> float:
        """Clone the demonstrations into the actor; return the last loss."""
        loss = float('nan')
        for _ in tqdm(range(self.settings.bc_steps), desc='behaviour cloning',
                      disable=not self.show_progress):
            loss = self.learner.bc_update(*self._demo_batch())
        return loss

    def train_step(self) -> dict[str, float]:
        """Take one RSSM step and one actor-critic step; return their metrics."""
        batch = self.buffer.sample(self.settings.batch, self.length, self.rng)
        model = rssm_update(self.world.rssm, self.model_opt, batch)
        with torch.no_grad():
            posterior, _ = self.world.rssm.observe(batch['embeds'], batch['prev_actions'])
        picks = torch.from_numpy(self.rng.permutation(posterior.deter.shape[0]
                                                      * posterior.deter.shape[1]))
        start = State(*(part.flatten(0, 1)[picks[:self.settings.imagine_starts]]
                        for part in posterior))
        behavior = self.learner.update(self.world.rssm, start, *self._demo_batch())
        return {**{f'model_{k}': v for k, v in model.items()}, **behavior}

    def run(self) -> dict:
        """Train until the env-step budget or the time limit; return the summary."""
        s, start = self.settings, time.monotonic()
        if self.iteration == 0 and s.bc_steps:
            self.rows.append({'iteration': 0, 'env_steps': 0, 'bc_loss': self.pretrain_actor()})
        envs = make_view_envs(s.task, self.world.embedder.views, self.world.embedder.image_size,
                              s.reward, s.num_envs)
        agent = HorizonAgent(self.world, self.nets, s.num_envs)
        collector = Collector(envs, agent, s.seed * 7919 + self.iteration * s.num_envs)
        log = RunLog(self.out_dir, 'env_steps', prefix='horizon/', skip=('iteration', 'episodes'),
                     resumed_at=self.env_steps if self.resumed else None)
        bar = tqdm(total=s.env_steps, initial=self.env_steps, desc='train horizon',
                   unit='step', disable=not self.show_progress)
        try:
            while self.env_steps < s.env_steps:
                elapsed = time.monotonic() - start
                if s.time_limit_min is not None and elapsed > 60 * s.time_limit_min:
                    break
                self.env_steps += collector.collect(s.collect_steps, self.buffer)
                bar.update(s.collect_steps * s.num_envs)
                terms = [self.train_step() for _ in range(s.updates)]
                self.iteration += 1
                row = {'iteration': self.iteration, 'env_steps': self.env_steps,
                       'seconds': round(time.monotonic() - start, 1),
                       'episodes': len(collector.successes),
                       'train_success': float(np.mean(collector.successes[-20:]))
                       if collector.successes else None,
                       **{k: float(np.mean([t[k] for t in terms])) for k in terms[0]}}
                if self.iteration % s.eval_every == 0 or self.env_steps >= s.env_steps:
                    row['val_success'] = evaluate_agent(envs, agent, s.eval_episodes,
                                                        s.eval_seed_start)
                    collector = Collector(envs, agent,
                                          s.seed * 7919 + self.iteration * s.num_envs)
                    self._save(row['val_success'])
                    bar.set_postfix(validation=f'{row["val_success"]:.2f}')
                self.rows.append(row)
                log.log(row)
        finally:
            bar.close()
            log.close()
            envs.close()
        if not any('val_success' in r for r in self.rows[-1:]):
            self._save(None)
        plot_horizon_curves(self.rows, self.out_dir / 'curves.png', s.reward)
        evaluated = [r for r in self.rows if 'val_success' in r]
        return log.write_summary({
            'env_steps': self.env_steps, 'iterations': self.iteration,
            'seconds': round(time.monotonic() - start, 1), 'reward': s.reward,
            'imagination_horizon': self.nets.config.horizon,
            'best_val_success': self.best if evaluated else None,
            'final_val_success': evaluated[-1]['val_success'] if evaluated else None})

    def _save(self, success: Optional[float]) -> None:
        """Write the latest agent and what resumes it; the best one as ``checkpoint/``."""
        save_agent(self.out_dir / LAST_CHECKPOINT, self.nets)
        save_rssm(self.out_dir / RSSM_DIR, self.world.rssm, self.world.normalizer,
                  self.settings.task, self.settings.reward, self.world.key_horizon)
        if success is None or success >= self.best or not (self.out_dir / CHECKPOINT).is_dir():
            self.best = max(self.best, success if success is not None else -1.0)
            save_agent(self.out_dir / CHECKPOINT, self.nets)
        atomic_torch_save({'model_opt': self.model_opt.state_dict(),
                           'actor_opt': self.learner.actor_opt.state_dict(),
                           'critic_opt': self.learner.critic_opt.state_dict(),
                           'target': self.learner.target.state_dict(),
                           'return_scale': self.learner.return_scale,
                           'env_steps': self.env_steps, 'iteration': self.iteration,
                           'best': self.best, 'rows': self.rows},
                          self.out_dir / TRAINING_STATE)
        online = [e for e in self.buffer.episodes if not e.demo]
        np.savez_compressed(self.out_dir / REPLAY_FILE, **{
            f'{i}_{k}': getattr(e, k) for i, e in enumerate(online)
            for k in ('embeds', 'actions', 'rewards', 'continues')},
            success=np.array([e.success for e in online], dtype=bool))

    def _restore(self, state: dict) -> None:
        """Continue from the training state and replay buffer of the last :meth:`_save`."""
        self.model_opt.load_state_dict(state['model_opt'])
        self.learner.actor_opt.load_state_dict(state['actor_opt'])
        self.learner.critic_opt.load_state_dict(state['critic_opt'])
        self.learner.target.load_state_dict(state['target'])
        self.learner.return_scale = state['return_scale']
        self.env_steps, self.iteration = state['env_steps'], state['iteration']
        self.best, self.rows = state['best'], state['rows']
        replay = np.load(self.out_dir / REPLAY_FILE)
        for i, success in enumerate(replay['success']):
            self.buffer.add(EpisodeSequence(*(replay[f'{i}_{k}'] for k in (
                'embeds', 'actions', 'rewards', 'continues')), bool(success), demo=False))


def plot_horizon_curves(rows: list[dict], path: Path, reward: str) -> None:
    """Draw validation and training success, imagined return and model loss against env steps."""
    figure = Figure(figsize=(12, 3.4), dpi=100)
    axes = figure.subplots(1, 3)
    trained = [r for r in rows if 'model_loss' in r]
    evaluated = [r for r in rows if 'val_success' in r]
    axes[0].plot([r['env_steps'] for r in evaluated], [r['val_success'] for r in evaluated],
                 marker='o', label='validation seeds')
    axes[0].plot([r['env_steps'] for r in trained if r['train_success'] is not None],
                 [r['train_success'] for r in trained if r['train_success'] is not None],
                 alpha=0.6, label='training (last 20 episodes)')
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].set_ylabel('success')
    axes[0].legend(fontsize=7)
    axes[1].plot([r['env_steps'] for r in trained], [r['imagined_return'] for r in trained])
    axes[1].set_ylabel(f'imagined lambda-return ({reward})')
    axes[2].plot([r['env_steps'] for r in trained], [r['model_loss'] for r in trained])
    axes[2].set_ylabel('RSSM loss')
    axes[2].set_yscale('log')
    for ax in axes:
        ax.set_xlabel('environment steps')
        ax.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format='png')
