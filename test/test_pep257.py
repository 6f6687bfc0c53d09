"""Docstring style: ament_pep257 over the package sources."""

from ament_pep257.main import main
from lint_paths import lint_paths
import pytest


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=lint_paths())
    assert rc == 0, 'Found code style errors / warnings'
