"""Source folders the linters check (build, install and venv folders are not ours)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ('visual_rl_stack', 'sim', 'perception', 'residual_policy', 'vlm_affordance',
           'world_model', 'launch', 'test', 'tools')


def lint_paths() -> list[str]:
    """Return the existing source folders and setup.py as absolute paths."""
    paths = [ROOT / name for name in FOLDERS] + [ROOT / 'setup.py']
    return [str(p) for p in paths if p.exists()]
