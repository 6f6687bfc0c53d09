"""Code style: ament_flake8 over the package sources (the check ament_lint_auto runs)."""

from ament_flake8.main import main_with_errors
from lint_paths import lint_paths
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=lint_paths())
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
