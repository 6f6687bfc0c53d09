"""The import contracts of .importlinter hold, and the policy registry names real openers."""

import importlib
from pathlib import Path

from importlinter.cli import lint_imports
import pytest
import visual_rl_stack
from visual_rl_stack.core.policy import POLICY_KINDS, policy_opener

CONFIG = Path(__file__).resolve().parent.parent / '.importlinter'


def test_installed_package_holds_every_method_folder():
    # import-linter walks the folder the package imports from; it must hold sim/ and the rest.
    folder = Path(visual_rl_stack.__file__).parent
    missing = [name for name in ('sim', 'perception', 'residual_policy', 'core', 'cli')
               if not (folder / name / '__init__.py').is_file()]
    assert not missing, f'{folder} lacks {missing}: run the tests on the colcon install space'


def test_import_contracts_are_kept(capsys):
    assert CONFIG.is_file(), CONFIG
    code = lint_imports(config_filename=str(CONFIG), no_cache=True)
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize('kind', sorted(POLICY_KINDS))
def test_every_registered_policy_kind_opens_from_a_learner(kind):
    module_name = POLICY_KINDS[kind].split(':')[0]
    learners = ('residual_policy', 'vlm_affordance', 'world_model')
    assert module_name.split('.')[1] in learners, module_name
    assert callable(policy_opener(kind))
    assert importlib.import_module(module_name)


def test_an_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match='unknown policy kind .*known kinds: bc, residual'):
        policy_opener('telepathy')
