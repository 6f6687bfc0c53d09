"""
Shipped models: small trained policies in ``models/<name>/`` that make the defaults work.

A shipped model is a trimmed run folder (``checkpoint/`` and ``config.json``,
without optimiser state or logs) plus ``model.json``, its card: task,
observations, what it scored and the exact commands that rebuild it from
nothing (collect the demonstrations, train). Anywhere a policy run folder is
accepted (``vrl eval --policy``, the policy node's ``policy`` parameter), the
name of a shipped model is accepted too.

``vrl models`` lists them; ``vrl models add RUN NAME --eval EVAL.json`` ships
a run: weights are stored as float16 (half the size; the policy computes in
float32 after loading) unless ``--float32`` keeps them as trained, for a
policy whose measured success float16 rounding costs, and the retrain
commands come from the run's own records (the data folder's ``index.json``
and the run's ``config.json``), so they are the commands that were actually
run.
"""

from dataclasses import dataclass
import datetime
import json
import os
from pathlib import Path
import shlex
import shutil
import tempfile
from typing import Optional

from safetensors.torch import save_file
import torch

from .checkpoints import CONFIG_FILE, NORMALIZATION_FILE, read_weights, WEIGHTS_FILE
from .package_files import share_folder, source_folder
from .run_layout import (CHECKPOINT, MODEL_CARD, PathLike, RESIDUAL, RESIDUAL_KINDS, RUN_CONFIG,
                         run_kind)

#: How shipped diffusion weights may be stored.
WEIGHT_DTYPES = {'float16': torch.float16, 'float32': torch.float32}
#: Card kind of a keypoint affordance model (a KAGI backend's weights, not a policy).
AFFORDANCE_KIND = 'affordance'
#: Shipped models must stay small enough for a git repository.
MAX_MODEL_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class ShippedModel:
    """One entry of ``models/``: where it is and what its card says."""

    name: str
    path: Path
    card: dict

    @property
    def size_bytes(self) -> int:
        """Return the size of the model folder on disk."""
        return folder_bytes(self.path)

    @property
    def is_policy(self) -> bool:
        """Return whether this is a policy (not an affordance model, which opens as a backend)."""
        return self.card.get('kind') != AFFORDANCE_KIND

    def summary(self) -> dict:
        """Return the card fields worth a line in a listing."""
        evaluation = self.card.get('evaluation') or {}
        return {'name': self.name, 'task': self.card.get('task'),
                'kind': self.card.get('kind'), 'obs': self.card.get('obs_mode'),
                'success_rate': evaluation.get('success_rate'),
                'within_2cm': evaluation.get('within_2cm'),
                'episodes': evaluation.get('episodes'),
                'seed_start': evaluation.get('seed_start'),
                'size_mb': round(self.size_bytes / 2 ** 20, 2), 'path': str(self.path)}


def folder_bytes(folder: Path) -> int:
    """Return the total size of the files below ``folder``."""
    return sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())


def models_dir() -> Path:
    """
    Return the ``models/`` folder: the source tree's when running from one, else share/.

    The source tree wins so that a freshly added model is found before the
    next ``colcon build`` installs it; an installed package (no ``models/``
    beside its Python package) finds the copy in its share directory.
    """
    source = source_folder('models')
    if source.is_dir():
        return source
    return share_folder('models') or source


def shipped_models(folder: Optional[Path] = None) -> dict[str, ShippedModel]:
    """Return every model under ``folder`` (default :func:`models_dir`) by name."""
    folder = folder or models_dir()
    if not folder.is_dir():
        return {}
    found = {}
    for card in sorted(folder.glob(f'*/{MODEL_CARD}')):
        found[card.parent.name] = ShippedModel(card.parent.name, card.parent,
                                               json.loads(card.read_text()))
    return found


def resolve_policy(name_or_path: PathLike, folder: Optional[Path] = None) -> Path:
    """
    Return the run folder of a shipped model name or an existing path.

    Raises ValueError naming the shipped models when it is neither.
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    models = shipped_models(folder)
    if str(name_or_path) in models:
        model = models[str(name_or_path)]
        if not model.is_policy:
            raise ValueError(f'{model.name!r} is an affordance model (a keypoint_net backend), '
                             'not a policy')
        return model.path
    known = ', '.join(sorted(models)) or 'none installed'
    raise ValueError(f'policy {str(name_or_path)!r} is neither a shipped model ({known}) nor '
                     'an existing run or checkpoint folder')


def retrain_commands(run_config: dict) -> list[str]:
    """
    Return the commands that rebuild a run: its data collection, then its training sessions.

    The collection command is the one recorded in the data folder's
    ``index.json`` (when the folder is still there; a residual run starts
    with its base's commands, from its card for a shipped base); the training commands
    are those recorded in the run's sessions. Only ``vrl`` command lines are
    kept (a run made from Python has no command to rerun), with the
    executable's path shortened to ``vrl``.
    """
    commands = []
    shipped_base = shipped_models().get(str(run_config.get('base')))
    if shipped_base is not None:
        commands += shipped_base.card.get('retrain', [])
    elif isinstance(run_config.get('base_run'), dict):
        commands += retrain_commands(run_config['base_run'])
    index = Path(run_config.get('data', '')) / 'index.json'
    if index.is_file():
        recorded = json.loads(index.read_text()).get('command')
        if recorded:
            commands.append(recorded)
    commands += [s['command'] for s in run_config.get('sessions', []) if s.get('command')]
    return [c for c in map(_vrl_command, commands) if c]


def _vrl_command(command: str) -> Optional[str]:
    """Return a recorded ``vrl`` command with the executable's path shortened; None otherwise."""
    words = shlex.split(command)
    if not words or os.path.basename(words[0]) != 'vrl':
        return None  # recorded from Python (a test, a notebook): not a command to rerun
    return shlex.join(['vrl', *words[1:]])


def publish_staged(staging: Path, folder: Path, name: str, card: dict) -> Path:
    """
    Write ``card`` into the ``staging`` folder and move it to ``folder / name``; return that.

    Refuses a model over :data:`MAX_MODEL_BYTES`; an older model of that name is replaced.
    """
    (staging / MODEL_CARD).write_text(json.dumps(card, indent=2) + '\n')
    size = folder_bytes(staging)
    if size > MAX_MODEL_BYTES:
        raise ValueError(f'model {name} would be {size / 2 ** 20:.1f} MB, over the '
                         f'{MAX_MODEL_BYTES / 2 ** 20:.0f} MB limit for shipped models')
    target = folder / name
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def add_model(run: PathLike, name: str, evaluation: Optional[dict] = None,
              folder: Optional[Path] = None, description: str = '',
              weights_dtype: str = 'float16') -> ShippedModel:
    """
    Copy a BC or residual run into ``models/<name>`` (card included); return it.

    The diffusion weights are stored as ``weights_dtype``: float16 halves the
    size, float32 keeps them bitwise as trained (for a policy that float16
    rounding measurably hurts). A residual run's small residual networks are
    copied as they are. ``folder`` defaults to :func:`models_dir`, where
    ``vrl models`` and name resolution look (not beside an installed package,
    where a stray ``models/`` would hide the installed ones).

    ``evaluation`` is a ``vrl eval --json`` result; its success rate, seeds
    and command go on the card. Raises ValueError when the run is not a BC
    run, the evaluation is of another task, or the model would exceed
    :data:`MAX_MODEL_BYTES`.
    """
    if weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f'weights_dtype must be one of {sorted(WEIGHT_DTYPES)}, '
                         f'got {weights_dtype!r}')
    run = Path(run)
    checkpoint = run / CHECKPOINT
    if not (checkpoint / WEIGHTS_FILE).is_file() or not (run / RUN_CONFIG).is_file():
        raise ValueError(f'{run} is not a training run folder (needs {CHECKPOINT}/'
                         f'{WEIGHTS_FILE} and {RUN_CONFIG})')
    run_config = json.loads((run / RUN_CONFIG).read_text())
    kind = run_kind(run, run_config)
    is_residual = kind in RESIDUAL_KINDS
    if evaluation is not None and evaluation.get('task') != run_config.get('task'):
        raise ValueError(f'the evaluation is of task {evaluation.get("task")!r}, the run was '
                         f'trained on {run_config.get("task")!r}')
    folder = folder or models_dir()
    if not name or '/' in name or name.startswith('.'):
        raise ValueError(f'invalid model name {name!r}: use letters, digits, _ and -')
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{name}.', dir=folder))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide an installed model from other users
    try:
        (staging / CHECKPOINT).mkdir()
        dtype = WEIGHT_DTYPES[weights_dtype]
        tensors = {k: v.to(dtype) if v.is_floating_point() else v
                   for k, v in read_weights(checkpoint).items()}
        save_file(tensors, str(staging / CHECKPOINT / WEIGHTS_FILE),
                  metadata={'kind': 'diffusion_policy', 'stored_dtype': weights_dtype})
        for extra in (CONFIG_FILE, NORMALIZATION_FILE):
            shutil.copy2(checkpoint / extra, staging / CHECKPOINT / extra)
        if is_residual:
            shutil.copytree(run / RESIDUAL, staging / RESIDUAL)
        trimmed = _trim(run_config)
        (staging / RUN_CONFIG).write_text(json.dumps(trimmed, indent=2) + '\n')
        card = {
            'name': name, 'kind': kind,
            'task': run_config.get('task'),
            'obs_mode': run_config.get('obs_mode'),
            'action_mode': run_config.get('action_mode'),
            'description': description,
            'weights_dtype': weights_dtype,
            'training': (_residual_training(run, run_config) if is_residual else
                         {'steps': run_config.get('steps'),
                          'episodes': run_config.get('episodes'),
                          'windows': run_config.get('windows')}),
            'retrain': retrain_commands(run_config),
            'evaluation': _evaluation_summary(evaluation),
            'shipped': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
        }
        target = publish_staged(staging, folder, name, card)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ShippedModel(name, target, card)


def _trim(run_config: dict) -> dict:
    """Drop the long per-episode name lists from a run config (and its base's)."""
    trimmed = {k: v for k, v in run_config.items() if k != 'episode_names'}
    if isinstance(trimmed.get('base_run'), dict):
        trimmed['base_run'] = _trim(trimmed['base_run'])
    return trimmed


def _residual_training(run: Path, run_config: dict) -> dict:
    """Return the card's training block of a residual run (from its summary when present)."""
    summary_path = run / 'summary.json'
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    keys = ('env_steps', 'wall_s', 'baseline_val_success', 'best_val_success',
            'best_at_env_steps', 'best_at_wall_s')
    started_from = {k: summary[k] for k in ('init_residual', 'init_training') if k in summary}
    return {'base': run_config.get('base'), **{k: summary.get(k) for k in keys}, **started_from}


def _evaluation_summary(evaluation: Optional[dict]) -> Optional[dict]:
    """Keep the headline numbers of a ``vrl eval`` JSON (not the per-episode rows)."""
    if evaluation is None:
        return None
    keys = ('episodes', 'seed_start', 'successes', 'success_rate', 'mean_episode_length',
            'via_ros', 'date', 'inference_latency_ms', 'command')
    return {k: evaluation[k] for k in keys if k in evaluation}
