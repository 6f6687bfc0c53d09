"""The import contracts of .importlinter hold, and the policy registry names real openers."""

import importlib
import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest
import visual_rl_stack
from visual_rl_stack.core.policy import POLICY_KINDS, policy_opener

CONFIG = Path(__file__).resolve().parent.parent / '.importlinter'
#: Folders installed as sub-packages of visual_rl_stack (setup.py's SUBPACKAGE_DIRS).
METHOD_FOLDERS = ('sim', 'perception', 'residual_policy', 'vlm_affordance', 'world_model')


def assemble_package(target: Path) -> Path:
    """
    Copy the package as Python sees it into ``target/visual_rl_stack`` and return ``target``.

    An editable install maps ``visual_rl_stack.sim`` to the checkout's ``sim/``
    beside ``visual_rl_stack/``; import-linter reads one folder tree, so the
    sub-packages are gathered where an installed package would hold them.
    """
    root = target / 'visual_rl_stack'
    skip = shutil.ignore_patterns('__pycache__', '*.pyc')
    shutil.copytree(Path(visual_rl_stack.__file__).parent, root, ignore=skip)
    for name in METHOD_FOLDERS:
        if not (root / name).is_dir():
            module = importlib.import_module(f'visual_rl_stack.{name}')
            shutil.copytree(Path(module.__file__).parent, root / name, ignore=skip)
    return target


def test_import_contracts_are_kept(tmp_path):
    assert CONFIG.is_file(), CONFIG
    tree = assemble_package(tmp_path / 'tree')
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(tree), os.environ.get('PYTHONPATH', '')]), 'PYTHONSAFEPATH': '1'}
    command = ('import sys; from importlinter.cli import lint_imports; '
               'import visual_rl_stack; assert visual_rl_stack.__file__.startswith(sys.argv[2]); '
               'sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))')
    done = subprocess.run([sys.executable, '-c', command, str(CONFIG), str(tree)], cwd=tree,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize('kind', sorted(POLICY_KINDS))
def test_every_registered_policy_kind_opens_from_a_learner(kind):
    module_name = POLICY_KINDS[kind].split(':')[0]
    learners = ('residual_policy', 'vlm_affordance', 'world_model')
    assert module_name.split('.')[1] in learners, module_name
    assert callable(policy_opener(kind))
    assert importlib.import_module(module_name)


def test_an_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError,
                       match='unknown policy kind .*known kinds: bc, resfit, residual'):
        policy_opener('telepathy')
