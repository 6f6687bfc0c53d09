"""
What the world model's training stages share: bags split off for a held-out check.

The last episodes of a folder of bags are held out, and the settings of a
stage say how often it checks itself on them.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from visual_rl_stack.data.dataset import episode_bags


@dataclass(frozen=True)
class HeldOutTraining:
    """How long a stage trains on which bags, and how often it checks the held-out episodes."""

    task: str
    data: str
    steps: int = 3000
    batch: int = 16
    lr: float = 3e-4
    seed: int = 0
    val_fraction: float = 0.1
    log_every: int = 100
    val_batches: int = 4
    time_limit_min: Optional[float] = None

    def __post_init__(self) -> None:
        """Refuse settings that train or check nothing."""
        if min(self.steps, self.batch, self.log_every, self.val_batches) < 1:
            raise ValueError('steps, batch, log_every and val_batches must be >= 1')
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f'val_fraction must be in (0, 1), got {self.val_fraction}')


def split_bags(data: Path, val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Return (training, held-out) bags: the last ``val_fraction`` (at least one) held out."""
    bags = episode_bags(data)
    if len(bags) < 2:
        raise ValueError(f'{data} has {len(bags)} episode bag(s); the world model needs at '
                         f'least 2 (one is held out)')
    held = max(1, int(round(val_fraction * len(bags))))
    return bags[:-held], bags[-held:]
