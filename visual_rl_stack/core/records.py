"""Records of measured numbers: atomic JSON files, and when and where they were measured."""

import datetime
import json
import os
from pathlib import Path
import platform


def machine_description() -> dict:
    """Describe the machine a number was measured on (for docs/results.md)."""
    gpu = None
    try:
        import torch
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {'cpu_cores': os.cpu_count(), 'processor': platform.processor() or platform.machine(),
            'gpu': gpu, 'python': platform.python_version()}


def now_iso() -> str:
    """Return the UTC time as ISO 8601 seconds (the date a record was written)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def write_json(data: dict, path: Path) -> None:
    """Write ``data`` as JSON atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + '.tmp')
    tmp.write_text(json.dumps(data, indent=2) + '\n')
    tmp.replace(path)
