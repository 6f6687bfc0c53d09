"""
Behaviour cloning of the diffusion policy from a folder of expert bags.

A run is a folder (DESIGN.md section 5)::

    RUN/config.json          run settings, policy config, data, machine, resumes
    RUN/metrics.jsonl        one line per ``log_every`` steps: step, loss, lr, samples_per_s
    RUN/tensorboard/         TensorBoard events (train/loss, train/lr, train/samples_per_s)
    RUN/loss.png             loss curve
    RUN/checkpoint/          policy checkpoint with the EMA weights (DiffusionPolicy.save)
    RUN/training_state.pt    training weights, optimiser, LR schedule, EMA, RNG, step
    RUN/summary.json         final loss, throughput, checkpoint path, date and machine of
                             the last session

Optimisation follows Chi et al. 2023: AdamW (betas 0.95/0.999, weight decay
1e-6), cosine schedule with linear warm-up (``diffusers`` ``get_scheduler``),
EMA of the weights (``create_ema``). Batches are drawn uniformly with
replacement from the windows of :mod:`.bc_windows`.

The checkpoint and the training state are written together, atomically, every
``checkpoint_every`` steps and at the end. ``resume=True`` continues from the
saved step up to ``steps`` (a total, not a number of extra steps) with the
saved policy config, normalisers, optimiser, schedule (rebuilt for the new
total), EMA and random state; metrics logged after the saved step are dropped
and later ones appended. Training settings left unset (None) are the run's
own on a resume and :data:`TRAINING_DEFAULTS` otherwise; those given apply;
the task, data folder and observations are the run's (:data:`RESUMABLE`).
"""

import json
from pathlib import Path
import sys
import time
from typing import Any, Mapping, Optional

from diffusers.optimization import get_scheduler
from matplotlib.figure import Figure
import torch
from tqdm import tqdm
from visual_rl_stack.core.checkpoints import (atomic_torch_save, load_training_state,
                                              read_checkpoint_config)
from visual_rl_stack.core.devices import autocast_context, resolve_device
from visual_rl_stack.core.records import machine_description, now_iso, write_json
from visual_rl_stack.core.run_layout import (BC_KIND, check_resumed_settings, CHECKPOINT,
                                             LOSS_PLOT, METRICS, PathLike, RUN_CONFIG,
                                             TRAINING_STATE, training_state_to_use)
from visual_rl_stack.core.run_logs import RunLog
from visual_rl_stack.data.dataset import BagDataset
from visual_rl_stack.residual_policy.diffusion_bc.model.config import (DATA_FIELDS,
                                                                       DiffusionPolicyConfig)
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import (
    create_ema, DiffusionPolicy, ema_weights, fit_normalizers)
from visual_rl_stack.residual_policy.diffusion_bc.model.normalization import MinMaxNormalizer

from .bc_windows import BCWindows
from .config import BCTrainSettings, TRAINING_DEFAULTS

#: Settings a resumed run may be given anew; the task, data and observations are its own.
RESUMABLE = ('steps', 'device', 'views', *TRAINING_DEFAULTS)


def train_bc(settings: BCTrainSettings, out_dir: PathLike, resume: bool = False,
             config_overrides: Optional[Mapping[str, Any]] = None,
             progress: bool = True) -> Path:
    """
    Train a diffusion policy on the bags in ``settings.data``; return the checkpoint folder.

    ``config_overrides`` sets :class:`DiffusionPolicyConfig` fields other than
    those the data decides (``DATA_FIELDS``). Raises ValueError or
    FileNotFoundError with a message naming the problem for a missing or empty
    data folder, bags of another task, an ``obs_mode`` whose images the bags
    lack, a run folder that already holds a run (without ``resume``), a
    resume that changes more than :data:`RESUMABLE` or has nothing left to do.
    Unset (None) training settings are the resumed run's own, or
    :data:`.config.TRAINING_DEFAULTS` for a new run.
    """
    out_dir = Path(out_dir)
    own = {}
    if resume and (out_dir / RUN_CONFIG).is_file():
        own = json.loads((out_dir / RUN_CONFIG).read_text())
    settings = settings.resolved(own)
    settings.check()
    data_dir, views = Path(settings.data), list(settings.views or ()) or None
    task, obs_mode, steps = settings.task, settings.obs_mode, settings.steps
    batch_size, lr, warmup, seed = settings.batch_size, settings.lr, settings.warmup, settings.seed
    checkpoint_every, log_every = settings.checkpoint_every, settings.log_every
    overrides = dict(config_overrides or {})
    fixed = sorted(set(overrides) & set(DATA_FIELDS))
    if fixed:
        raise ValueError(f'{", ".join(fixed)} come from the data and cannot be overridden')
    state_path = training_state_to_use(out_dir, resume, CHECKPOINT)
    if own:
        _check_resumed(out_dir, own, settings)
    dataset = load_episodes(data_dir, task, obs_mode, views)
    episodes = list(dataset.episodes())
    device_ = resolve_device(settings.device)
    saved = load_training_state(state_path) if resume else None
    if saved is None:
        probe = BCWindows(episodes, 1, 1, obs_mode, views)
        config = DiffusionPolicyConfig.from_dict({
            **overrides, 'obs_mode': obs_mode,
            'state_dim': probe.state_dim, 'action_dim': probe.action_dim,
            'state_labels': tuple(episodes[0].state_labels), 'views': tuple(probe.views),
            'image_size': probe.image_size or DiffusionPolicyConfig.image_size})
        normalizers = fit_normalizers(config, probe.actions.numpy(), probe.states.numpy())
        start_step = 0
    else:
        config, normalizers = _saved_policy_setup(saved, overrides, out_dir)
        start_step = int(saved['step'])
        if steps <= start_step:
            raise ValueError(f'run {out_dir} is already at step {start_step}; '
                             f'pass --steps larger than {start_step} to train further')
    windows = BCWindows(episodes, config.n_obs_steps, config.horizon, obs_mode,
                        list(config.views) or None)
    if (windows.state_dim, windows.action_dim) != (config.state_dim, config.action_dim):
        raise ValueError(f'the data in {data_dir} has state/action sizes '
                         f'{windows.state_dim}/{windows.action_dim}, the run was trained on '
                         f'{config.state_dim}/{config.action_dim}')

    torch.manual_seed(seed)
    sampler = torch.Generator().manual_seed(seed)
    policy = DiffusionPolicy(config, normalizers)
    if saved is not None:
        policy.load_state_dict(saved['model'])
    policy.to(device_).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, betas=(0.95, 0.999),
                                  weight_decay=1e-6)
    schedule = get_scheduler('cosine', optimizer, num_warmup_steps=warmup,
                             num_training_steps=steps)
    ema = create_ema(policy)
    if saved is not None:
        optimizer.load_state_dict(saved['optimizer'])
        schedule.load_state_dict(saved['lr_schedule'])
        schedule.base_lrs = [lr] * len(schedule.base_lrs)
        for group, base, factor in zip(optimizer.param_groups, schedule.base_lrs,
                                       schedule.lr_lambdas):
            group['lr'] = base * factor(schedule.last_epoch)
        ema.load_state_dict(saved['ema'])
        ema.to(device_)
        torch.set_rng_state(saved['torch_rng'])
        sampler.set_state(saved['sampler_rng'])

    run_config = _run_config(out_dir, saved, settings, device_, config, windows, episodes)
    write_json(run_config, out_dir / RUN_CONFIG)
    checkpoint = out_dir / CHECKPOINT
    bar = tqdm(total=steps, initial=start_step, desc='train-bc', unit='step',
               disable=not progress)
    losses, interval_time, total_time, last = [], 0.0, 0.0, None
    with RunLog(out_dir, prefix='train/', resumed_at=start_step) as log:
        try:
            for step in range(start_step + 1, steps + 1):
                started = time.perf_counter()
                indices = torch.randint(0, len(windows), (batch_size,), generator=sampler)
                batch = windows.batch(indices)
                with autocast_context(device_):
                    loss = policy.compute_loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                ema.step(policy.parameters())
                losses.append(loss.item())
                elapsed = time.perf_counter() - started
                interval_time += elapsed
                total_time += elapsed
                bar.update(1)
                if step % log_every == 0 or step == steps:
                    last = {'step': step, 'loss': sum(losses) / len(losses),
                            'lr': optimizer.param_groups[0]['lr'],
                            'samples_per_s': batch_size * len(losses) / interval_time}
                    log.log(last)
                    bar.set_postfix(loss=f'{last["loss"]:.4f}')
                    losses, interval_time = [], 0.0
                if step % checkpoint_every == 0 or step == steps:
                    _save(out_dir, policy, ema, optimizer, schedule, sampler, step)
        finally:
            bar.close()
        log.write_summary({'steps': steps, 'steps_this_session': steps - start_step,
                           'final_loss': last['loss'],
                           'samples_per_s': batch_size * (steps - start_step) / total_time,
                           'train_s': total_time, 'checkpoint': str(checkpoint),
                           'device': str(device_)})
    return checkpoint


def load_episodes(data_dir: Path, task: str, obs_mode: str,
                  views: Optional[list[str]] = None) -> BagDataset:
    """Open the bags of ``data_dir``, checking the task and that the needed images exist."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f'data folder {data_dir} does not exist')
    index_path = data_dir / 'index.json'
    if index_path.is_file():
        recorded = json.loads(index_path.read_text()).get('task')
        if recorded not in (None, task):
            raise ValueError(f'data folder {data_dir} holds {recorded!r} episodes, '
                             f'not {task!r} ones')
    try:
        dataset = BagDataset(data_dir, views=views if 'image' in obs_mode else None)
    except ValueError as error:
        raise ValueError(f'cannot read episodes from data folder {data_dir}: {error}') from error
    if not len(dataset):
        raise ValueError(f'data folder {data_dir} holds no episodes')
    if 'image' in obs_mode and not dataset.episode(0).images:
        raise ValueError(f'obs_mode {obs_mode!r} needs camera images, but the bags in '
                         f'{data_dir} have none; record them with vrl collect --views')
    return dataset


def plot_loss(metrics_path: Path, out_path: Path) -> None:
    """Draw the loss curve of ``metrics_path`` to a PNG (atomically)."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line]
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot()
    axes.plot([r['step'] for r in rows], [r['loss'] for r in rows])
    axes.set_yscale('log')
    axes.set_xlabel('step')
    axes.set_ylabel('denoising loss (MSE)')
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    tmp = out_path.with_name(f'.{out_path.name}.tmp')
    figure.savefig(tmp, format='png')
    tmp.replace(out_path)


def _check_resumed(out_dir: Path, own: Mapping[str, Any], settings: BCTrainSettings) -> None:
    """Refuse to resume a run on another task, data folder or observations."""
    same_data = Path(own.get('data', '')).resolve() == Path(settings.data).resolve()
    # The same folder spelt another way (relative, absolute) is the same data.
    saved = {**own, 'data': settings.data if same_data else own.get('data')}
    check_resumed_settings(out_dir, saved, settings, RESUMABLE)


def _saved_policy_setup(saved: dict, overrides: Mapping[str, Any], out_dir: Path
                        ) -> tuple[DiffusionPolicyConfig, dict[str, MinMaxNormalizer]]:
    """Return the saved run's policy config and normalisers; refuse conflicting settings."""
    config = DiffusionPolicyConfig.from_dict(saved['policy_config'])
    wanted = DiffusionPolicyConfig.from_dict({**config.to_dict(), **overrides})
    different = [k for k in overrides if getattr(wanted, k) != getattr(config, k)]
    if different:
        raise ValueError(f'run {out_dir} was trained with other policy settings '
                         f'({", ".join(sorted(different))}); a resumed run keeps its config')
    normalizers = {name: MinMaxNormalizer.from_dict(d)
                   for name, d in saved['normalization'].items()}
    return config, normalizers


def _run_config(out_dir: Path, saved: Optional[dict], settings: BCTrainSettings,
                device: torch.device, config: DiffusionPolicyConfig, windows: BCWindows,
                episodes: list) -> dict:
    """Return the run's config.json; a resumed run keeps its history of sessions."""
    session = {'date': now_iso(), 'from_step': int(saved['step']) if saved else 0,
               'to_step': settings.steps,
               'command': ' '.join(sys.argv), 'device': str(device),
               'machine': machine_description()}
    previous = []
    if saved is not None and (out_dir / RUN_CONFIG).is_file():
        previous = json.loads((out_dir / RUN_CONFIG).read_text()).get('sessions', [])
    return {'kind': BC_KIND, 'task': settings.task, 'data': str(settings.data),
            'obs_mode': settings.obs_mode, 'steps': settings.steps,
            'batch_size': settings.batch_size, 'lr': settings.lr, 'warmup': settings.warmup,
            'seed': settings.seed,
            'optimizer': {'name': 'AdamW', 'betas': [0.95, 0.999], 'weight_decay': 1e-6},
            'lr_schedule': 'cosine', 'checkpoint_every': settings.checkpoint_every,
            'log_every': settings.log_every, 'episodes': len(episodes), 'windows': len(windows),
            'episode_names': [e.name for e in episodes],
            'action_mode': episodes[0].action_mode,
            'state_labels': [list(x) for x in episodes[0].state_labels],
            'policy': config.to_dict(), 'sessions': previous + [session]}


def _save(out_dir: Path, policy: DiffusionPolicy, ema: Any, optimizer: torch.optim.Optimizer,
          schedule: Any, sampler: torch.Generator, step: int) -> None:
    """Write the EMA checkpoint, the training state and the loss plot, each atomically."""
    with ema_weights(policy, ema):
        policy.save(out_dir / CHECKPOINT)
    _config, normalization = read_checkpoint_config(out_dir / CHECKPOINT)
    state = {'step': step, 'model': policy.state_dict(), 'optimizer': optimizer.state_dict(),
             'lr_schedule': schedule.state_dict(), 'ema': ema.state_dict(),
             'torch_rng': torch.get_rng_state(), 'sampler_rng': sampler.get_state(),
             'policy_config': policy.config.to_dict(), 'normalization': normalization}
    atomic_torch_save(state, out_dir / TRAINING_STATE)
    plot_loss(out_dir / METRICS, out_dir / LOSS_PLOT)
