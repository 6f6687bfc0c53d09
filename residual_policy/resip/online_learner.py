"""
Online fine-tuning of a residual from the robot's own episodes (the real-arm path of ResiP).

:class:`OnlineResidualLearner` sits between the policy node and a
:class:`.agent.ResidualPolicyRunner`. Every observation step it is
given the reward that arrived with that observation, which pays for the
previous step's action (``r_t`` comes with ``o_{t+1}``), then it samples an
exploring action and opens a new transition. A transition is complete once
its reward has arrived; the one still open when the episode ends (the action
for the last observation, never executed) is dropped. A terminal reward
(task success) closes the episode early: later observations get the
deterministic action and are not recorded.

Between episodes (:meth:`end_episode`, called when the node sees a reset),
once ``min_steps`` transitions are buffered, one PPO update runs on them
(:func:`.ppo.ppo_update`, by default with the run's offline PPO settings) and the
residual is saved. Episode ends are treated as terminal, as offline.

Output folder (a complete residual run, so ``vrl eval --policy OUT`` works)::

    OUT/config.json, OUT/checkpoint/   copied from the starting run
    OUT/residual/                      the residual after the latest update
    OUT/transitions.jsonl              one line per completed transition
    OUT/updates.jsonl                  one line per PPO update (stats, steps, episodes)
"""

import json
from pathlib import Path
import shutil
from typing import Optional

import numpy as np
import torch
from visual_rl_stack.core.run_layout import CHECKPOINT, PathLike, RESIDUAL, RUN_CONFIG

from .agent import ResidualPolicyRunner, ResidualStep
from .config import PPOConfig
from .ppo import compute_gae, make_optimizers, ppo_update, RewardNormalizer

TRANSITIONS = 'transitions.jsonl'
UPDATES = 'updates.jsonl'


class OnlineResidualLearner:
    """Collect transitions from live episodes and update the residual between them."""

    def __init__(self, runner: ResidualPolicyRunner, out_dir: PathLike,
                 ppo: Optional[PPOConfig] = None, min_steps: int = 1) -> None:
        """Prepare ``out_dir`` as a residual run and set up PPO for ``runner``'s residual."""
        if not isinstance(runner, ResidualPolicyRunner):
            raise ValueError('online fine-tuning needs a residual run (vrl train-residual), '
                             'not a plain BC policy')
        if min_steps < 1:
            raise ValueError(f'min_steps must be >= 1, got {min_steps}')
        self.runner = runner
        # By default the PPO settings the residual was trained with offline.
        self.ppo = ppo or PPOConfig.from_dict(runner.run_config.get('ppo', {}))
        self.min_steps = min_steps
        self.out_dir = Path(out_dir)
        if (self.out_dir / RESIDUAL).exists():
            raise ValueError(f'{self.out_dir} already holds a fine-tuned residual; '
                             'choose another output folder')
        run_dir = runner.checkpoint.parent
        self.out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(runner.checkpoint, self.out_dir / CHECKPOINT)
        shutil.copy2(run_dir / RUN_CONFIG, self.out_dir / RUN_CONFIG)
        runner.agent.save(self.out_dir / RESIDUAL)
        self.optimizers = make_optimizers(runner.agent.actor, runner.agent.critic, self.ppo)
        self.reward_scale = RewardNormalizer(1, self.ppo.gamma, self.ppo.reward_clip)
        self._open: Optional[ResidualStep] = None
        self._episode: list[tuple[ResidualStep, float]] = []
        self._buffer: list[list[tuple[ResidualStep, float]]] = []
        self._done = False
        self.episodes = 0
        self.updates = 0

    def act(self, state: np.ndarray, images: Optional[dict[str, np.ndarray]] = None,
            reward: Optional[float] = None, terminal: bool = False) -> np.ndarray:
        """
        Return the action for this observation; ``reward`` is what the previous action earned.

        ``terminal`` says the previous action ended the episode (success).
        """
        if self._open is not None and reward is not None:
            self._episode.append((self._open, float(reward)))
            self._log_transition(self._open, float(reward), terminal)
            self._open = None
            self._done = terminal
        if self._done:
            return self.runner.act_from_observation(state, images)
        action, step = self.runner.act_with_residual(state, images, explore=True)
        self._open = step
        return action

    def interrupt(self) -> None:
        """Drop the open step: its reward was unusable, so it is never learned from."""
        self._open = None

    def close(self) -> None:
        """Nothing to stop or save: every update already saved the residual."""

    @staticmethod
    def describe(stats: dict) -> str:
        """Return one log line for the stats :meth:`end_episode` returned."""
        return (f'PPO update {stats["update"]}: {stats["steps"]} steps from '
                f'{stats["episodes"]} episodes, returns {stats["returns"]}, '
                f'approx KL {stats["approx_kl"]:.4f}, {int(stats["epochs"])} epochs')

    def end_episode(self) -> Optional[dict]:
        """Close the episode; run a PPO update when enough steps are buffered (stats or None)."""
        if self._episode:
            self._buffer.append(self._episode)
            self.episodes += 1
        self._open, self._episode, self._done = None, [], False
        steps = sum(len(e) for e in self._buffer)
        if steps < self.min_steps:
            return None
        stats = self._update()
        stats.update(update=self.updates, steps=steps, episodes=len(self._buffer),
                     returns=[sum(r for _, r in e) for e in self._buffer])
        self._buffer = []
        with (self.out_dir / UPDATES).open('a') as log:
            log.write(json.dumps(stats) + '\n')
        return stats

    def _update(self) -> dict:
        """Run PPO on the buffered episodes (one column each) and save the residual."""
        agent = self.runner.agent
        advantages, returns, steps = [], [], []
        for episode in self._buffer:
            rewards = np.array([r for _, r in episode])
            ends = np.zeros(len(episode), dtype=bool)
            ends[-1] = True
            scaled = np.array([self.reward_scale(np.array([r]), np.array([e]))[0]
                               for r, e in zip(rewards, ends)])
            values = torch.stack([s.value for s, _ in episode])[:, None]
            starts = torch.zeros_like(values)
            starts[0] = 1.0
            adv, ret = compute_gae(torch.as_tensor(scaled, dtype=torch.float32)[:, None],
                                   values, starts, torch.zeros(1), torch.ones(1),
                                   self.ppo.gamma, self.ppo.gae_lambda)
            advantages.append(adv[:, 0])
            returns.append(ret[:, 0])
            steps += [s for s, _ in episode]
        batch = {'states': torch.stack([s.state for s in steps]),
                 'base_actions': torch.stack([s.base_action for s in steps]),
                 'residuals': torch.stack([s.residual for s in steps]),
                 'log_probs': torch.stack([s.log_prob for s in steps]),
                 'values': torch.stack([s.value for s in steps]),
                 'advantages': torch.cat(advantages), 'returns': torch.cat(returns)}
        agent.train()
        stats = ppo_update(agent.actor, agent.critic, self.optimizers, batch, self.ppo,
                           train_actor=self.ppo.trains_actor(self.updates))
        agent.eval()
        self.updates += 1
        agent.save(self.out_dir / RESIDUAL)
        return stats

    def _log_transition(self, step: ResidualStep, reward: float, terminal: bool) -> None:
        """Append one completed transition to ``transitions.jsonl``."""
        row = {'episode': self.episodes, 'step': len(self._episode) - 1, 'reward': reward,
               'terminal': terminal, 'value': float(step.value),
               'log_prob': float(step.log_prob),
               'residual_norm': float(step.residual.norm()),
               'base_action': step.base_action.tolist()}
        with (self.out_dir / TRANSITIONS).open('a') as log:
            log.write(json.dumps(row) + '\n')
