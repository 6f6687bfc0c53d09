"""
A world-model run from :class:`.settings.WorldModelTrainSettings`: the MAE stage, then the RSSM.

Two entry points, so the caller can report the MAE before the RSSM trains.
The MAE stage starts the run: a folder that already holds a run is refused
(nothing would tell its files from the new run's); it trains the MAE
(:mod:`.mae.training`) or copies ``settings.mae``'s. The dynamics stage fits
the RSSM on that MAE (:mod:`.dynamics.training`).
"""

from pathlib import Path
import shutil
from typing import Optional

from visual_rl_stack.core.run_layout import refuse_existing_run, RUN_CONFIG

from .dynamics.training import RSSMTrainSettings, train_rssm
from .mae.model import MAE_DIR, MAEConfig
from .mae.training import MAETrainSettings, train_mae
from .settings import WorldModelTrainSettings


def train_mae_stage(settings: WorldModelTrainSettings, out_dir: Path,
                    show_progress: bool = True) -> Optional[dict]:
    """Start the run in ``out_dir`` with a trained MAE; return its summary (None: reused)."""
    refuse_existing_run(out_dir, RUN_CONFIG, 'choose another --out (--mae RUN reuses its MAE)')
    if settings.mae is not None:
        source = Path(settings.mae)
        if not (source / MAE_DIR).is_dir():
            raise ValueError(f'{source} has no {MAE_DIR}/ checkpoint')
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source / MAE_DIR, out_dir / MAE_DIR, dirs_exist_ok=True)
        shutil.copy(source / RUN_CONFIG, out_dir / RUN_CONFIG)
        return None
    s = settings
    config = MAEConfig(views=s.views, image_size=s.image_size, width=s.width,
                       encoder_layers=s.encoder_layers, decoder_layers=s.decoder_layers,
                       patch_ratio=s.patch_ratio)
    stage = MAETrainSettings(s.task, s.data, steps=s.steps, batch=s.batch, lr=s.lr, seed=s.seed,
                             log_every=s.log_every, time_limit_min=s.time_limit_min, clip=s.clip)
    return train_mae(stage, config, out_dir, show_progress)


def train_dynamics_stage(settings: WorldModelTrainSettings, out_dir: Path,
                         show_progress: bool = True) -> dict:
    """Fit the RSSM on the MAE in ``out_dir``; return its summary."""
    stage = RSSMTrainSettings(settings.task, settings.data, steps=settings.dynamics_steps,
                              seed=settings.seed, time_limit_min=settings.dynamics_time_limit_min,
                              reward=settings.reward)
    return train_rssm(stage, out_dir, show_progress)
