"""
Training the multi-view MAE on demonstration bags, with a held-out check and pictures.

The last episodes (``val_fraction`` of them, at least one) are held out: every
``log_every`` steps the masked-patch reconstruction error and the reward error
on them, under masks drawn from a fixed seed, go to ``metrics.jsonl`` and
TensorBoard (:class:`~visual_rl_stack.core.run_logs.RunLog`). The run
folder ends with the checkpoint (``mae/``: safetensors and the config that
rebuilds it), ``summary.json`` (with the date and machine), the loss curves
(``curves.png``) and ``reconstruction.png``: per view, the masked input, the
reconstruction and the target of held-out frames.
"""

from dataclasses import asdict, dataclass
from pathlib import Path
import time

from matplotlib.figure import Figure
import numpy as np
import torch
from tqdm import tqdm
from visual_rl_stack.core.checkpoints import save_checkpoint
from visual_rl_stack.core.records import machine_description, write_json
from visual_rl_stack.core.run_layout import RUN_CONFIG
from visual_rl_stack.core.run_logs import RunLog

from .data import Frames, load_frames, sample_clips
from .masking import tube_masks, view_patch_masks
from .model import MAE_DIR, MAE_KIND, MAEConfig, MultiViewMAE
from ..held_out import HeldOutTraining, split_bags


@dataclass(frozen=True)
class MAETrainSettings(HeldOutTraining):
    """How long and on what the MAE trains: frames per clip beside the shared settings."""

    clip: int = 2

    def __post_init__(self) -> None:
        """Refuse settings that train nothing."""
        super().__post_init__()
        if self.clip < 1:
            raise ValueError(f'clip must be >= 1, got {self.clip}')


def batch_tensors(frames: Frames, indices: np.ndarray, masks: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return images ``(B*clip) x V x 3 x S x S``, their tube masks and progress targets."""
    flat = indices.reshape(-1)
    images = torch.from_numpy(frames.images[flat]).permute(0, 1, 4, 2, 3).float() / 255.0
    tubes = tube_masks(masks, indices.shape[1]).flatten(0, 1)
    return images, tubes, torch.from_numpy(frames.progress[flat])


def evaluate(model: MultiViewMAE, frames: Frames, settings: MAETrainSettings) -> dict:
    """Return the held-out reconstruction and reward errors under seeded masks."""
    rng = np.random.default_rng(12345)
    generator = torch.Generator().manual_seed(12345)
    c = model.config
    totals = {'reconstruction': 0.0, 'reward': 0.0}
    with torch.no_grad():
        for _ in range(settings.val_batches):
            indices = sample_clips(frames, settings.batch, 1, rng)
            masks = view_patch_masks(settings.batch, len(c.views), c.patches, c.patch_ratio,
                                     generator)
            losses = model.losses(*batch_tensors(frames, indices, masks))
            for key in totals:
                totals[key] += losses[key].item() / settings.val_batches
    return totals


def train_mae(settings: MAETrainSettings, config: MAEConfig, out_dir: Path,
              show_progress: bool = True) -> dict:
    """Train the MAE on the settings' bags; write the run folder (module doc); return a summary."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    train_bags, val_bags = split_bags(Path(settings.data), settings.val_fraction)
    train = load_frames(train_bags, settings.task, config.views, config.image_size)
    held_out = load_frames(val_bags, settings.task, config.views, config.image_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json({'settings': asdict(settings), 'mae': config.to_dict(),
                'train_bags': [b.name for b in train_bags],
                'held_out_bags': [b.name for b in val_bags], 'machine': machine_description()},
               out_dir / RUN_CONFIG)
    model = MultiViewMAE(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.05)
    start, rows, step = time.monotonic(), [], 0
    bar = tqdm(range(1, settings.steps + 1), desc='train MAE', disable=not show_progress)
    with RunLog(out_dir, prefix='mae/', skip=('seconds',)) as log:
        for step in bar:
            indices = sample_clips(train, settings.batch, settings.clip, rng)
            masks = view_patch_masks(settings.batch, len(config.views), config.patches,
                                     config.patch_ratio, generator)
            losses = model.losses(*batch_tensors(train, indices, masks))
            optimiser.zero_grad()
            losses['loss'].backward()
            optimiser.step()
            out_of_time = (settings.time_limit_min is not None
                           and time.monotonic() - start > 60 * settings.time_limit_min)
            if step % settings.log_every == 0 or step == settings.steps or out_of_time:
                model.eval()
                held = evaluate(model, held_out, settings)
                model.train()
                row = {'step': step, 'seconds': round(time.monotonic() - start, 1),
                       'train_reconstruction': losses['reconstruction'].item(),
                       'train_reward': losses['reward'].item(),
                       'held_out_reconstruction': held['reconstruction'],
                       'held_out_reward': held['reward']}
                rows.append(row)
                log.log(row)
                bar.set_postfix(held_out=f'{held["reconstruction"]:.4f}')
            if out_of_time:
                break
        model.eval()
        save_checkpoint(out_dir / MAE_DIR, model, config.to_dict(), {}, MAE_KIND)
        plot_curves(rows, out_dir / 'curves.png')
        plot_reconstruction(model, held_out, out_dir / 'reconstruction.png', settings.seed)
        return log.write_summary({
            'steps': step, 'seconds': round(time.monotonic() - start, 1),
            'train_frames': len(train), 'held_out_frames': len(held_out), 'final': rows[-1],
            'best_held_out_reconstruction': min(r['held_out_reconstruction'] for r in rows)})


def plot_curves(rows: list[dict], path: Path) -> None:
    """Draw training and held-out reconstruction and reward errors against steps."""
    figure = Figure(figsize=(9, 3.5), dpi=100)
    for ax, key in zip(figure.subplots(1, 2), ('reconstruction', 'reward')):
        steps = [r['step'] for r in rows]
        ax.plot(steps, [r[f'train_{key}'] for r in rows], label='training batch')
        ax.plot(steps, [r[f'held_out_{key}'] for r in rows], label='held-out episodes')
        ax.set_xlabel('step')
        ax.set_ylabel(f'{key} MSE')
        ax.set_yscale('log')
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format='png')


def plot_reconstruction(model: MultiViewMAE, frames: Frames, path: Path, seed: int,
                        count: int = 2) -> None:
    """Draw masked input, reconstruction and target per view for ``count`` held-out frames."""
    c = model.config
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(frames), size=count, replace=False)[:, None]
    masks = view_patch_masks(count, len(c.views), c.patches, c.patch_ratio,
                             torch.Generator().manual_seed(seed))
    images, tubes, _ = batch_tensors(frames, indices, masks)
    with torch.no_grad():
        pixels, _ = model(images, tubes)
    target = model.patchify(images)
    shown = model.unpatchify(torch.where(tubes[..., None], 0.5, target))
    # Visible patches are shown as seen: the loss, as in MAE, is on the hidden ones only.
    recon = model.unpatchify(torch.where(tubes[..., None], pixels.clamp(0, 1), target))
    figure = Figure(figsize=(3 * 1.6 * count, 1.7 * len(c.views) + 0.4), dpi=100)
    axes = figure.subplots(len(c.views), 3 * count, squeeze=False)
    for k in range(count):
        for v, view in enumerate(c.views):
            for j, (title, batch) in enumerate((('masked', shown), ('reconstruction', recon),
                                                ('target', images))):
                ax = axes[v, 3 * k + j]
                ax.imshow(batch[k, v].permute(1, 2, 0).numpy())
                ax.set_xticks([])
                ax.set_yticks([])
                if v == 0:
                    ax.set_title(f'{title} #{int(indices[k, 0])}', fontsize=7)
                if 3 * k + j == 0:
                    ax.set_ylabel(view, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format='png')
