"""
The run folder: one definition of the files a training run and a shipped model hold.

Every trainer writes, and every loader reads, these names::

    RUN/config.json         run config: task, observations, action mode, ``kind``
    RUN/checkpoint/         the diffusion policy (weights, config, normalisation)
    RUN/residual/           a residual run's best residual (actor and critic)
    RUN/residual_last/      a residual run's latest residual (for resuming)
    RUN/metrics.jsonl       one JSON line per logged step
    RUN/summary.json        the outcome of the last session
    RUN/training_state.pt   optimiser state for ``--resume``
    RUN/tensorboard/        TensorBoard event files
    RUN/model.json          a shipped model's card (``vrl models``)
"""

from dataclasses import asdict
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

PathLike = Union[str, os.PathLike]
RUN_CONFIG = 'config.json'
CHECKPOINT = 'checkpoint'
RESIDUAL = 'residual'
RESIDUAL_LAST = 'residual_last'
METRICS = 'metrics.jsonl'
VALIDATION = 'validation.jsonl'
SUMMARY = 'summary.json'
TRAINING_STATE = 'training_state.pt'
TENSORBOARD = 'tensorboard'
LOSS_PLOT = 'loss.png'
CURVE_PLOT = 'learning_curve.png'
MODEL_CARD = 'model.json'
#: Policy kinds a run folder can hold, by its layout when its config does not say.
BC_KIND = 'bc'
RESIDUAL_KIND = 'residual'
RESFIT_KIND = 'resfit'
#: Kinds whose run folder is a frozen base plus a ``residual/`` correction.
RESIDUAL_KINDS = (RESIDUAL_KIND, RESFIT_KIND)
WORLD_MODEL_KIND = 'world_model'


def run_kind(run_dir: Path, run_config: Optional[dict] = None) -> str:
    """
    Return the policy kind of a run folder: its config's ``kind``, else from its layout.

    Runs written before the config recorded a kind are BC runs, or residual
    runs when they hold a ``residual/`` folder.
    """
    kind = (run_config or {}).get('kind')
    if kind:
        return str(kind)
    return RESIDUAL_KIND if (Path(run_dir) / RESIDUAL).is_dir() else BC_KIND


def training_state_to_use(out_dir: Path, resume: bool, trained: str) -> Path:
    """
    Return ``out_dir``'s training-state path, after the guard both trainers share.

    A resume needs a saved training state; a new run refuses a folder that
    already holds one, or already holds ``trained`` (the run's weights), so no
    run is overwritten by accident.
    """
    state_path = Path(out_dir) / TRAINING_STATE
    if resume and not state_path.is_file():
        raise FileNotFoundError(f'cannot resume: {state_path} does not exist')
    if not resume:
        refuse_existing_run(out_dir, trained)
    return state_path


def refuse_existing_run(out_dir: PathLike, trained: str,
                        remedy: str = 'pass --resume to continue it or choose another --out'
                        ) -> None:
    """
    Refuse to start a run in a folder that holds a training state or ``trained``.

    Starting over would mix two runs' files (or replace a trained one), so the
    ValueError says what to do instead: ``remedy``, for a command without
    ``--resume`` another wording.
    """
    if (Path(out_dir) / TRAINING_STATE).exists() or (Path(out_dir) / trained).exists():
        raise ValueError(f'run folder {out_dir} already holds a training run; {remedy}')


def check_resumed_settings(out_dir: PathLike, saved: Mapping[str, Any], settings: Any,
                           resumable: Sequence[str], also_different: Sequence[str] = ()) -> None:
    """
    Refuse to resume a run with other settings than it was started with.

    ``saved`` is the run's record of its settings (its config.json), ``settings``
    this session's settings dataclass; only the ``resumable`` fields (how long it
    trains) may differ. ``also_different`` names differences the caller found.
    """
    now = json.loads(json.dumps(asdict(settings)))
    different = sorted(k for k in now if k not in resumable and now[k] != saved.get(k))
    different += list(also_different)
    if different:
        allowed = ' and '.join('--' + name.replace('_', '-') for name in resumable)
        raise ValueError(f'run {out_dir} was started with other settings '
                         f'({", ".join(different)}); a resumed run keeps its settings, only '
                         f'{allowed} may change')
