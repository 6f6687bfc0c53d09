"""
Ship a keypoint-model run as ``models/<name>/`` with its card (``vrl models add``).

The weights are copied as trained (float32; the network is small), with the
tokenizer, and the card records the command that trained the run and, per
task, the ``vrl affordance`` measurement: grasp within 2 cm, median errors,
latency and the command that measured it.
"""

import datetime
import json
from pathlib import Path
import shutil
import statistics
import tempfile
from typing import Mapping, Sequence

from visual_rl_stack.core.run_layout import CHECKPOINT, RUN_CONFIG, SUMMARY
from visual_rl_stack.core.shipped_models import AFFORDANCE_KIND, publish_staged

#: The per-task numbers of a ``vrl affordance`` result that go on the card.
EVALUATION_KEYS = ('episodes', 'seed_start', 'within_2cm', 'median_error_m',
                   'target_median_error_m', 'target_within_2cm', 'failures', 'latency_ms',
                   'command')


def ship_affordance_model(run: Path, name: str, evaluations: Sequence[Mapping], folder: Path,
                          description: str = '') -> Path:
    """Copy the run's checkpoint into ``folder/name`` with its card; return the model folder."""
    run = Path(run)
    run_config = json.loads((run / RUN_CONFIG).read_text())
    if run_config.get('kind') != AFFORDANCE_KIND:
        raise ValueError(f'{run} is not a keypoint affordance run (kind '
                         f'{run_config.get("kind")!r})')
    if not name or '/' in name or name.startswith('.'):
        raise ValueError(f'invalid model name {name!r}: use letters, digits, _ and -')
    per_task = {e['task']: {k: e.get(k) for k in EVALUATION_KEYS} for e in evaluations}
    summary = json.loads((run / SUMMARY).read_text())
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{name}.', dir=folder))
    staging.chmod(0o755)
    try:
        shutil.copytree(run / CHECKPOINT, staging / CHECKPOINT)
        card = {
            'name': name, 'kind': AFFORDANCE_KIND, 'task': None,
            'tasks': run_config['settings']['tasks'], 'backend': 'keypoint_net',
            'obs_mode': 'rgbd', 'description': description, 'weights_dtype': 'float32',
            'training': {k: summary.get(k) for k in ('steps', 'wall_s', 'data_s',
                                                     'train_scenes', 'val_pixel_error',
                                                     'parameters')},
            'retrain': [run_config['command']] if run_config.get('command') else [],
            'evaluation': {
                'per_task': per_task,
                'within_2cm': (statistics.mean(r['within_2cm'] for r in per_task.values())
                               if per_task else None),
                'episodes': sum(r['episodes'] for r in per_task.values()),
                'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec='seconds')},
            'shipped': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
        }
        target = publish_staged(staging, folder, name, card)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
