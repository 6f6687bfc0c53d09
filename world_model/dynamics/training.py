"""
Fitting the RSSM on demonstration sequences embedded by the frozen MAE.

The bags are split as the MAE's were (the last ones held out). Every
``log_every`` steps the negative ELBO's terms on held-out windows go to
``dynamics_metrics.jsonl`` and TensorBoard (``rssm/...``); the run folder
gets the checkpoint ``rssm/`` (its normalisation holds the embedding
statistics; its config the reward the head predicts and the demonstrations'
median key-horizon, which sets the imagination horizon),
``dynamics_curves.png`` and ``dynamics_summary.json`` (with the date and
machine). The MAE stage's logs beside them keep their names.
"""

from dataclasses import asdict, dataclass
from pathlib import Path
import time

from matplotlib.figure import Figure
import numpy as np
import torch
from tqdm import tqdm
from visual_rl_stack.core.checkpoints import save_checkpoint
from visual_rl_stack.core.rewards import PLANNER_STAGES
from visual_rl_stack.core.run_logs import RunLog

from .rssm import RSSM, RSSM_DIR, RSSM_KIND, RSSMConfig
from .sequences import (demo_sequences, Embedder, EmbedNormalizer, recorded_reward,
                        SequenceBuffer)
from ..held_out import HeldOutTraining, split_bags
from ..mae.model import load_mae

METRICS = 'dynamics_metrics.jsonl'
CURVES = 'dynamics_curves.png'
SUMMARY = 'dynamics_summary.json'
LOSS_TERMS = ('embed', 'reward', 'continue', 'kl')


@dataclass(frozen=True)
class RSSMTrainSettings(HeldOutTraining):
    """How long and on what the dynamics train: the reward and window beside the shared ones."""

    steps: int = 2000
    reward: str = PLANNER_STAGES
    length: int = 24

    def __post_init__(self) -> None:
        """Refuse settings that train nothing."""
        super().__post_init__()
        if self.length < 1:
            raise ValueError(f'length must be >= 1, got {self.length}')
        object.__setattr__(self, 'reward', recorded_reward(self.reward))


def rssm_update(rssm: RSSM, optimiser: torch.optim.Optimizer, batch: dict) -> dict[str, float]:
    """Take one clipped gradient step on the negative ELBO; return its terms."""
    losses, _ = rssm.losses(batch)
    optimiser.zero_grad()
    losses['loss'].backward()
    torch.nn.utils.clip_grad_norm_(rssm.parameters(), 100.0)
    optimiser.step()
    return {k: float(v.detach()) for k, v in losses.items()}


def held_out_losses(rssm: RSSM, buffer: SequenceBuffer, settings: RSSMTrainSettings
                    ) -> dict[str, float]:
    """Return the mean loss terms on seeded held-out windows."""
    rng = np.random.default_rng(12345)
    totals = dict.fromkeys(('loss',) + LOSS_TERMS, 0.0)
    with torch.no_grad():
        torch.manual_seed(12345)
        for _ in range(settings.val_batches):
            losses, _ = rssm.losses(buffer.sample(settings.batch, settings.length, rng))
            for key in totals:
                totals[key] += float(losses[key]) / settings.val_batches
    return totals


def save_rssm(path: Path, rssm: RSSM, normalizer: EmbedNormalizer, task: str, reward: str,
              key_horizon: int) -> None:
    """Write the RSSM checkpoint with what rebuilds and uses it."""
    save_checkpoint(path, rssm, {'rssm': rssm.config.to_dict(), 'task': task, 'reward': reward,
                                 'key_horizon': int(key_horizon)},
                    normalizer.to_dict(), RSSM_KIND)


def train_rssm(settings: RSSMTrainSettings, out_dir: Path, show_progress: bool = True) -> dict:
    """Train the dynamics on the MAE of ``out_dir`` (module doc); return a summary."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    embedder = Embedder(load_mae(out_dir))
    train_bags, val_bags = split_bags(Path(settings.data), settings.val_fraction)
    train, horizons = demo_sequences(train_bags, settings.task, embedder, settings.reward,
                                     show_progress)
    held, _ = demo_sequences(val_bags, settings.task, embedder, settings.reward, show_progress)
    normalizer = EmbedNormalizer.fit(train)
    buffers = [SequenceBuffer(normalizer), SequenceBuffer(normalizer)]
    for buffer, sequences in zip(buffers, (train, held)):
        for sequence in sequences:
            buffer.add(sequence)
    length = min(settings.length, min(len(s) for s in held))
    settings = RSSMTrainSettings(**{**asdict(settings), 'length': length})
    key_horizon = int(np.median(horizons))
    rssm = RSSM(RSSMConfig(embed_size=embedder.size))
    optimiser = torch.optim.Adam(rssm.parameters(), lr=settings.lr, eps=1e-5)
    start, rows, step = time.monotonic(), [], 0
    bar = tqdm(range(1, settings.steps + 1), desc='train RSSM', disable=not show_progress)
    with RunLog(out_dir, prefix='rssm/', skip=('seconds',), metrics=METRICS,
                summary=SUMMARY) as log:
        for step in bar:
            terms = rssm_update(rssm, optimiser, buffers[0].sample(settings.batch, length, rng))
            out_of_time = (settings.time_limit_min is not None
                           and time.monotonic() - start > 60 * settings.time_limit_min)
            if step % settings.log_every == 0 or step == settings.steps or out_of_time:
                rssm.eval()
                held_terms = held_out_losses(rssm, buffers[1], settings)
                rssm.train()
                row = {'step': step, 'seconds': round(time.monotonic() - start, 1),
                       **{f'train_{k}': v for k, v in terms.items()},
                       **{f'held_out_{k}': v for k, v in held_terms.items()}}
                rows.append(row)
                log.log(row)
                bar.set_postfix(held_out=f'{held_terms["loss"]:.3f}')
            if out_of_time:
                break
        save_rssm(out_dir / RSSM_DIR, rssm.eval(), normalizer, settings.task, settings.reward,
                  key_horizon)
        plot_dynamics_curves(rows, out_dir / CURVES)
        return log.write_summary({
            'steps': step, 'seconds': round(time.monotonic() - start, 1),
            'train_steps': buffers[0].steps(), 'held_out_steps': buffers[1].steps(),
            'window': length, 'key_horizon': key_horizon, 'reward': settings.reward,
            'first': rows[0], 'final': rows[-1]})


def plot_dynamics_curves(rows: list[dict], path: Path) -> None:
    """Draw each loss term of training batches and held-out windows against steps."""
    figure = Figure(figsize=(12, 3.2), dpi=100)
    steps = [r['step'] for r in rows]
    for ax, key in zip(figure.subplots(1, len(LOSS_TERMS)), LOSS_TERMS):
        ax.plot(steps, [r[f'train_{key}'] for r in rows], label='training batch')
        ax.plot(steps, [r[f'held_out_{key}'] for r in rows], label='held-out episodes')
        ax.set_xlabel('step')
        ax.set_title(key, fontsize=9)
        ax.set_yscale('log')
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, format='png')
