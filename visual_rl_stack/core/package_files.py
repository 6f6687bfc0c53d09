"""
Where the package's data folders are: the installed share directory or the source tree.

``models/`` and ``config/`` are installed under ``share/visual_rl_stack/``;
running from a checkout (tests, a fresh model) finds them beside the sources.
"""

from pathlib import Path
from typing import Optional

PACKAGE = 'visual_rl_stack'
#: The checkout root when running from a source tree (this file is two folders down).
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def share_folder(name: str) -> Optional[Path]:
    """Return ``share/visual_rl_stack/<name>`` of the installed package (None: not installed)."""
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE)) / name
    except (PackageNotFoundError, OSError):
        return None


def source_folder(name: str) -> Path:
    """Return ``<checkout>/<name>`` (it exists only when running from a source tree)."""
    return SOURCE_ROOT / name
