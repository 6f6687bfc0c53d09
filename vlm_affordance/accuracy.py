"""
How well an affordance backend points: proposed keypoints against privileged truth.

For each seed the task's randomised scene is reset and rendered as for the
keypoint model's training (:class:`.keypoint_model.scene.SceneMaker`), one
of the scene's instructions is drawn (seeded), the prompt is built with
candidates from depth, the backend is asked through :class:`.query.AffordanceQuery`
and the keypoints are lifted to the world with :func:`.lifting.lift_keypoints`.
A grasp is within 2 cm when its lifted point lies within 2 cm of the
privileged grasp point; a failed query or lift counts as not within, and as an
infinite error in the median. Grasps are not snapped to candidates unless
``snap`` is set: a candidate is a region's centre, up to ~2 cm from the top
face's centre a keypoint model points at.
"""

import math
from pathlib import Path
import random
import statistics
from typing import Callable, Optional

import numpy as np

from .affordance import AffordanceBackend
from .keypoint_model.scene import keypoint_truth, SceneMaker
from .lifting import lift_keypoints
from .prompting import build_prompt, save_prompt
from .query import AffordanceQuery, SNAPPED_KEYPOINTS

WITHIN_M = 0.02


def evaluate_affordance(backend: AffordanceBackend, task: str, episodes: int, seed_start: int,
                        save_prompts: Optional[Path] = None, snap: bool = False,
                        progress: Optional[Callable[[int], None]] = None) -> dict:
    """Return the summary and per-episode rows of ``episodes`` seeds from ``seed_start``."""
    if episodes < 1:
        raise ValueError(f'episodes must be >= 1, got {episodes}')
    maker = SceneMaker()
    query = AffordanceQuery(backend, candidate_keypoints=SNAPPED_KEYPOINTS if snap else ())
    rows = []
    try:
        for seed in range(seed_start, seed_start + episodes):
            rows.append(_episode(maker, query, task, seed, save_prompts))
            if progress:
                progress(1)
    finally:
        maker.close()
    errors = [math.inf if r['grasp_error_m'] is None else r['grasp_error_m'] for r in rows]
    targets = [math.inf if r['target_error_m'] is None else r['target_error_m'] for r in rows]
    return {'task': task, 'backend': backend.name, 'episodes': episodes,
            'seed_start': seed_start, 'snap_to_candidates': snap,
            'within_2cm': sum(e <= WITHIN_M for e in errors) / episodes,
            'median_error_m': _finite(statistics.median(errors)),
            'target_median_error_m': _finite(statistics.median(targets)),
            'target_within_2cm': sum(e <= WITHIN_M for e in targets) / episodes,
            'failures': sum(not r['ok'] for r in rows),
            'latency_ms': statistics.median(r['latency_ms'] for r in rows),
            'per_episode': rows}


def _episode(maker: SceneMaker, query: AffordanceQuery, task: str, seed: int,
             save_prompts: Optional[Path]) -> dict:
    """Ask about one scene and compare the lifted keypoints with the truth."""
    scene = maker.make(task, seed)
    instruction = random.Random(f'eval:{task}:{seed}').choice(scene.instructions())
    truth = keypoint_truth(task, scene.state, instruction)
    prompt = build_prompt(scene.frames, instruction.text)
    if save_prompts is not None:
        save_prompt(prompt, Path(save_prompts) / f'{task}_{seed}')
    result = query(prompt)
    row = {'seed': seed, 'instruction': instruction.text, 'ok': result.ok,
           'diagnostic': result.diagnostic, 'attempts': len(result.attempts),
           'latency_ms': 1000 * result.latency_s, 'reply': result.replies[-1:],
           'truth': {'grasp': truth.grasp.tolist(), 'target': truth.target.tolist()},
           'keypoints': {}, 'grasp_error_m': None, 'target_error_m': None}
    if not result.ok:
        return row
    lifted = lift_keypoints(result.affordance.keypoints.values(), scene.frames)
    for name, kp in result.affordance.keypoints.items():
        point = lifted.points.get(name)
        row['keypoints'][name] = {'view': kp.view, 'u': kp.u, 'v': kp.v,
                                  'candidate': kp.candidate, 'height': kp.height,
                                  'world': None if point is None else point.tolist(),
                                  'lift': lifted.diagnostics.get(name, '')}
    for name, true_point in (('grasp', truth.grasp), ('target', truth.target)):
        if name in lifted.points:
            row[f'{name}_error_m'] = float(np.linalg.norm(lifted.points[name] - true_point))
    return row


def _finite(value: float) -> Optional[float]:
    """Return ``value``, or None for infinity (JSON has no infinity)."""
    return None if math.isinf(value) else value
