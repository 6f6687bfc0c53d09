"""Settings of one keypoint-model training run (no torch: the CLI builds its flags from them)."""

from dataclasses import dataclass

from visual_rl_stack.core.config_dicts import setting

#: Tasks the model knows (reach has no object to point at).
TASKS = ('lift', 'push', 'pick_place', 'stack', 'stack3', 'peg_insert')
#: Validation scenes start at this seed; training seeds run from 0 and must stay below it.
VALIDATION_SEED = 900
#: Evaluation seeds start here (``vrl affordance --seed-start``), disjoint from both.
EVALUATION_SEED = 1000


@dataclass(frozen=True)
class KeypointTrainSettings:
    """One training run of the keypoint affordance model, data generation included."""

    tasks: tuple[str, ...] = setting(TASKS, 'tasks whose scenes make the data')
    episodes: int = setting(700, 'training scenes per task (seeds 0 .. N-1, below 900)')
    val_episodes: int = setting(20, 'validation scenes per task (seeds 900 ..)')
    instructions: int = setting(4, 'instructions kept per scene (the task phrasing and others)')
    steps: int = setting(3500, 'optimiser steps')
    stack_weight: float = setting(3.0, 'how much more often stack and stack3 scenes are drawn '
                                       '(their instructions are the ones that need the words)')
    batch_size: int = setting(16, 'scenes per batch (each gives its front and side view)')
    lr: float = setting(2e-3, 'peak learning rate (cosine decay after a short warm-up)')
    image_size: int = setting(128, 'square input size of each view (the default cameras)')
    seed: int = setting(0, 'training seed')
    workers: int = setting(2, 'processes that render the scenes')
    threads: int = setting(2, 'torch CPU threads')
    log_every: int = setting(50, 'steps between metrics lines')
    val_every: int = setting(500, 'steps between validation passes')
    time_limit_min: float = setting(0.0, 'stop training after this many minutes in all '
                                         '(data included; 0: no limit)')

    def check(self) -> None:
        """Raise ValueError for settings that cannot train."""
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f'unknown tasks {unknown or "(none given)"}; the model knows '
                             f'{", ".join(TASKS)}')
        if not 1 <= self.episodes <= VALIDATION_SEED:
            raise ValueError(f'episodes must be 1 .. {VALIDATION_SEED} (training seeds stay '
                             f'below the validation seeds), got {self.episodes}')
        if not 1 <= self.val_episodes <= EVALUATION_SEED - VALIDATION_SEED:
            raise ValueError('val_episodes must be 1 .. '
                             f'{EVALUATION_SEED - VALIDATION_SEED}, got {self.val_episodes}')
        if min(self.instructions, self.steps, self.batch_size, self.workers, self.threads,
               self.log_every, self.val_every) < 1:
            raise ValueError('instructions, steps, batch_size, workers, threads, log_every and '
                             'val_every must be >= 1')
        if self.image_size % 8:
            raise ValueError(f'image_size must be a multiple of 8, got {self.image_size}')
