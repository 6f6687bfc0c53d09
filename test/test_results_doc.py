"""docs/results.md and README's model table match the model cards; docs link nowhere outside."""

import json
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / 'tools' / 'gen_results.py'
CARDS = sorted((ROOT / 'models').glob('*/model.json'))
#: Cards with a success rate (policies); an affordance model's card measures keypoints.
POLICY_CARDS = [p for p in CARDS if json.loads(p.read_text()).get('kind') != 'affordance']


def run_tool(*args):
    """Run tools/gen_results.py with ``args`` in a fresh interpreter."""
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True,
                          text=True, timeout=60)


def test_results_doc_is_generated_from_the_cards():
    result = run_tool('--check', '--root', str(ROOT))
    assert result.returncode == 0, (
        'docs/results.md or README.md is out of date; run python tools/gen_results.py\n'
        + result.stdout + result.stderr)


def test_check_reports_a_changed_card(tmp_path):
    for name in ('models', 'docs'):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns('checkpoint', 'images'))
    shutil.copy(ROOT / 'README.md', tmp_path / 'README.md')
    card_path = tmp_path / POLICY_CARDS[0].relative_to(ROOT)
    card = json.loads(card_path.read_text())
    card['evaluation']['successes'] -= 1
    card_path.write_text(json.dumps(card))
    result = run_tool('--check', '--root', str(tmp_path))
    assert result.returncode == 1
    assert 'docs/results.md' in result.stderr and card['name'] in result.stdout


def test_there_are_cards():
    assert CARDS, 'no models/*/model.json found'


@pytest.mark.parametrize('card_path', POLICY_CARDS, ids=lambda p: p.parent.name)
def test_card_success_rate_is_successes_over_episodes(card_path):
    evaluation = json.loads(card_path.read_text())['evaluation']
    assert evaluation['success_rate'] == pytest.approx(
        evaluation['successes'] / evaluation['episodes'])


def test_docs_link_nowhere_outside_the_repository():
    docs = [ROOT / 'README.md'] + sorted((ROOT / 'docs').rglob('*.md'))
    offending = [f'{path.relative_to(ROOT)}:{number}: {line.strip()}'
                 for path in docs
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if 'http://' in line or 'https://' in line or '](../' in line
                 or 'shared/' in line]
    assert not offending, '\n'.join(offending)


def test_every_study_row_has_a_cell_per_column_and_a_command():
    """A study in results_extra.json renders as a table; a short row is refused, not misdrawn."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('gen_results', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    extra = json.loads((ROOT / 'docs' / 'results_extra.json').read_text())
    for study in extra.get('studies', []):
        assert study['commands'] and all(len(r) == len(study['columns']) for r in study['rows'])
    lines = tool.studies_section({'studies': [{'title': 'T', 'columns': ['a', 'b'],
                                               'rows': [[1, 2]], 'commands': ['vrl x']}]})
    assert '| 1 | 2 |' in lines and 'vrl x' in lines and '## T' in lines
    with pytest.raises(ValueError, match='has 1 cells for 2 columns'):
        tool.studies_section({'studies': [{'title': 'T', 'columns': ['a', 'b'], 'rows': [[1]],
                                           'commands': ['vrl x']}]})
