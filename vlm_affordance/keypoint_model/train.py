"""
Train the keypoint model: render the scenes, fit the heatmaps, write a run folder.

The run folder (``vrl train-affordance --out RUN``) holds ``checkpoint/``
(``model.safetensors``, ``config.json``, ``normalization.json`` and
``tokenizer.json``), ``config.json`` (the settings and the command),
``metrics.jsonl``, ``tensorboard/``, ``loss.png``, ``validation.png``
(predicted against true keypoints on validation views) and ``summary.json``
(with the date and machine; :class:`~visual_rl_stack.core.run_logs.RunLog`).
A folder where a run was started (it has ``config.json``) is refused: its
TensorBoard events would mix with the new run's. The loss is the
cross-entropy of each visible keypoint's heatmap against a Gaussian at its
true pixel, plus a smooth-L1 on the heights. The learning
rate decays on a cosine over whichever runs out first, the steps or the time
limit, so a time-limited run still ends at a low rate.
"""

from dataclasses import asdict
import math
from pathlib import Path
import shlex
import sys
import time
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from visual_rl_stack.core.checkpoints import save_checkpoint
from visual_rl_stack.core.records import write_json
from visual_rl_stack.core.run_layout import CHECKPOINT, LOSS_PLOT, refuse_existing_run, RUN_CONFIG
from visual_rl_stack.core.run_logs import RunLog

from .config import KeypointTrainSettings, VALIDATION_SEED
from .data import generate, KeypointData
from .language import all_texts, build_tokenizer, save_tokenizer
from .model import (HEATMAP_KEYPOINTS, heatmap_target, image_to_cells, KeypointNet,
                    KeypointNetConfig, network_input, peaks, STRIDE)

#: Checkpoint kind of the keypoint network, and the run/card kind of an affordance model.
CHECKPOINT_KIND = 'affordance_keypoints'
RUN_KIND = 'affordance'
VALIDATION_PLOT = 'validation.png'
WARMUP = 100
HEIGHT_SCALE = 0.05
SAVE_MARGIN_S = 20.0


def batch_tensors(data: KeypointData, tokens: np.ndarray, scenes: np.ndarray,
                  texts: np.ndarray) -> dict[str, torch.Tensor]:
    """Return one batch, views flattened into the batch: ``(B*V) x ...``."""
    views = data.rgb.shape[1]
    rgb = torch.from_numpy(data.rgb[scenes]).flatten(0, 1)
    xyz = torch.from_numpy(data.xyz[scenes]).flatten(0, 1)
    return {'images': network_input(rgb, xyz),
            'tokens': torch.from_numpy(tokens[scenes, texts]).repeat_interleave(views, dim=0),
            'uv': torch.from_numpy(data.uv[scenes, texts]).flatten(0, 1),
            'visible': torch.from_numpy(data.visible[scenes, texts]).flatten(0, 1),
            'height': torch.from_numpy(data.height[scenes, texts]).repeat_interleave(
                views, dim=0)}


def losses(model: KeypointNet, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the heatmap, height and total losses of a batch, and the pixel error."""
    logits, height = model(batch['images'], batch['tokens'])
    size = logits.shape[-1]
    target = heatmap_target(image_to_cells(batch['uv']), size)
    log_probs = torch.log_softmax(logits.flatten(-2), dim=-1).view_as(logits)
    visible = batch['visible'].float()
    heatmap = -((target * log_probs).sum(dim=(-1, -2)) * visible).sum() / visible.sum().clamp(1)
    height_loss = F.smooth_l1_loss(height / HEIGHT_SCALE, batch['height'] / HEIGHT_SCALE)
    with torch.no_grad():
        points, _ = peaks(logits, model.config.window)
        error = ((points - batch['uv']).norm(dim=-1) * visible).sum() / visible.sum().clamp(1)
    return {'loss': heatmap + height_loss, 'heatmap': heatmap, 'height': height_loss,
            'pixel_error': error}


def train_keypoints(settings: KeypointTrainSettings, out: Path,
                    progress: bool = True) -> Path:
    """Run one training session into ``out``; return the checkpoint folder."""
    settings.check()
    started = time.monotonic()
    deadline = started + settings.time_limit_min * 60 if settings.time_limit_min > 0 else math.inf
    out = Path(out)
    refuse_existing_run(out, RUN_CONFIG, 'choose a new --out')
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    command = shlex.join(['vrl', *sys.argv[1:]]) if Path(sys.argv[0]).name == 'vrl' else ''
    write_json({'kind': RUN_KIND, 'settings': asdict(settings), 'command': command},
               out / RUN_CONFIG)
    tokenizer = build_tokenizer(all_texts())
    config = KeypointNetConfig(vocab_size=tokenizer.get_vocab_size(),
                               image_size=settings.image_size)
    train, val = _data(settings, progress)
    data_s = time.monotonic() - started
    train_tokens = train.tokens(tokenizer, config.max_tokens)
    val_tokens = val.tokens(tokenizer, config.max_tokens)
    model = KeypointNet(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    rng = np.random.default_rng(settings.seed)
    weights = np.array([settings.stack_weight if task.startswith('stack') else 1.0
                        for task in train.tasks])
    weights /= weights.sum()
    history: list[dict] = []
    train_start = time.monotonic()
    bar = tqdm(total=settings.steps, desc='train-affordance', disable=not progress)
    step = 0
    with RunLog(out, skip=('wall_s',)) as log:
        while step < settings.steps and time.monotonic() < deadline - SAVE_MARGIN_S:
            fraction = max(step / settings.steps, (time.monotonic() - train_start)
                           / max(deadline - SAVE_MARGIN_S - train_start, 1e-9))
            lr = settings.lr * min(1.0, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(
                math.pi * min(fraction, 1.0)))
            for group in optimiser.param_groups:
                group['lr'] = lr
            scenes = rng.choice(len(train), size=settings.batch_size, p=weights)
            texts = rng.integers(train_tokens.shape[1], size=settings.batch_size)
            model.train()
            result = losses(model, batch_tensors(train, train_tokens, scenes, texts))
            optimiser.zero_grad()
            result['loss'].backward()
            optimiser.step()
            step += 1
            bar.update(1)
            if step % settings.log_every == 0 or step % settings.val_every == 0:
                row = {'step': step, 'lr': lr, 'wall_s': time.monotonic() - started,
                       **{f'train/{k}': float(v.detach()) for k, v in result.items()}}
                if step % settings.val_every == 0:
                    row.update(validate(model, val, val_tokens))
                log.log(row)
                history.append(row)
                bar.set_postfix(loss=f'{row["train/loss"]:.3f}',
                                px=f'{row["train/pixel_error"]:.2f}')
        bar.close()
        final = {'step': step, 'wall_s': time.monotonic() - started,
                 **validate(model, val, val_tokens)}
        log.log(final)
        history.append(final)
        checkpoint = save_checkpoint(out / CHECKPOINT, model, config.to_dict(),
                                     {'keypoints': list(HEATMAP_KEYPOINTS), 'stride': STRIDE},
                                     CHECKPOINT_KIND)
        save_tokenizer(tokenizer, checkpoint)
        plot_losses(history, out / LOSS_PLOT)
        plot_validation(model, val, val_tokens, out / VALIDATION_PLOT)
        log.write_summary({'steps': step, 'wall_s': time.monotonic() - started,
                           'data_s': data_s, 'train_scenes': len(train),
                           'val_scenes': len(val), 'val_pixel_error': final['val/pixel_error'],
                           'val_loss': final['val/loss'],
                           'parameters': sum(p.numel() for p in model.parameters())})
    return checkpoint


def _data(settings: KeypointTrainSettings, progress: bool) -> tuple[KeypointData, KeypointData]:
    """Render the training and validation scenes."""
    seeds = {'train': list(range(settings.episodes)),
             'val': list(range(VALIDATION_SEED, VALIDATION_SEED + settings.val_episodes))}
    found = []
    for split, split_seeds in seeds.items():
        bar = tqdm(total=len(split_seeds) * len(settings.tasks), desc=f'scenes ({split})',
                   disable=not progress)
        found.append(generate(settings.tasks, split_seeds, settings.instructions,
                              settings.image_size, settings.workers, bar.update))
        bar.close()
    return found[0], found[1]


def validate(model: KeypointNet, data: KeypointData, tokens: np.ndarray) -> dict[str, float]:
    """Return the validation losses and pixel error over every scene and instruction."""
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    with torch.no_grad():
        for start in range(0, len(data), 32):
            scenes = np.arange(start, min(start + 32, len(data)))
            for j in range(tokens.shape[1]):
                result = losses(model, batch_tensors(data, tokens, scenes,
                                                     np.full(len(scenes), j)))
                for key, value in result.items():
                    totals[key] = totals.get(key, 0.0) + float(value) * len(scenes)
                count += len(scenes)
    return {f'val/{k}': v / max(count, 1) for k, v in totals.items()}


def plot_losses(history: list[dict], path: Path) -> None:
    """Draw the training and validation loss and pixel error against the step."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key in zip(axes, ('loss', 'pixel_error')):
        for split in ('train', 'val'):
            rows = [r for r in history if f'{split}/{key}' in r]
            axis.plot([r['step'] for r in rows], [r[f'{split}/{key}'] for r in rows],
                      label=split, marker='o' if split == 'val' else None)
        axis.set_xlabel('step')
        axis.set_ylabel(key.replace('_', ' ') + (' (input px)' if key == 'pixel_error' else ''))
        axis.set_yscale('log')
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def plot_validation(model: KeypointNet, data: KeypointData, tokens: np.ndarray, path: Path,
                    count: int = 8, scale: int = 3) -> Optional[Path]:
    """Draw true (circles) and predicted (crosses) keypoints on validation front views."""
    picks = np.linspace(0, len(data) - 1, min(count, len(data))).astype(int)
    batch = batch_tensors(data, tokens, picks, np.zeros(len(picks), int))
    model.eval()
    with torch.no_grad():
        logits, _ = model(batch['images'], batch['tokens'])
        points, _ = peaks(logits, model.config.window)
    views = data.rgb.shape[1]
    tiles = []
    colours = ((255, 0, 255), (0, 255, 255))
    for i, scene in enumerate(picks):
        image = cv2.resize(data.rgb[scene, 0].transpose(1, 2, 0), None, fx=scale, fy=scale,
                           interpolation=cv2.INTER_NEAREST)
        image = np.ascontiguousarray(image)
        for k, colour in enumerate(colours):
            tu, tv = ((data.uv[scene, 0, 0, k] + 0.5) * scale).astype(int)
            pu, pv = ((points[i * views, k].numpy() + 0.5) * scale).astype(int)
            cv2.circle(image, (int(tu), int(tv)), 2 * scale, colour, 1)
            cv2.drawMarker(image, (int(pu), int(pv)), colour, cv2.MARKER_CROSS, 3 * scale, 1)
        cv2.putText(image, data.texts[scene][0][:48], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(image)
    rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in range(0, len(tiles) - 3, 4)]
    if not rows:
        rows = [np.concatenate(tiles, axis=1)]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return path
