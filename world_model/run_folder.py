"""
A world-model run folder opened for use: the frozen MAE, the RSSM and their statistics.

``vrl train-world-model`` writes ``mae/`` (the multi-view MAE) and ``rssm/``
(the latent dynamics, whose normalisation holds the embedding statistics and
whose config records the reward its head predicts and the demonstrations'
median key-horizon). Both are safetensors checkpoints that only load into
models built from their own configs.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from visual_rl_stack.core.checkpoints import load_checkpoint, read_checkpoint_config
from visual_rl_stack.core.rewards import canonical_reward

from .dynamics.rssm import RSSM, RSSM_DIR, RSSM_KIND, RSSMConfig
from .dynamics.sequences import Embedder, EmbedNormalizer
from .mae.model import load_mae


@dataclass
class WorldModel:
    """The parts of a trained world model an agent or the node needs."""

    embedder: Embedder
    rssm: RSSM
    normalizer: EmbedNormalizer
    reward: str
    key_horizon: int
    task: str


def load_world_model(run: Union[str, Path]) -> WorldModel:
    """Open a world-model run with both stages trained; ValueError naming what is missing."""
    path = Path(run)
    if not (path / RSSM_DIR).is_dir():
        raise ValueError(f'{path} has no {RSSM_DIR}/ checkpoint: train the dynamics with '
                         f'vrl train-world-model first')
    config, normalization = read_checkpoint_config(path / RSSM_DIR, RSSM_KIND)
    rssm = load_checkpoint(path / RSSM_DIR,
                           lambda c, _: RSSM(RSSMConfig.from_dict(c['rssm'])), RSSM_KIND)
    return WorldModel(Embedder(load_mae(path)), rssm, EmbedNormalizer.from_dict(normalization),
                      canonical_reward(config['reward']), int(config['key_horizon']),
                      config['task'])
