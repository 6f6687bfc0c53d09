"""The tables of policy kinds and rewards in docs/architecture.md are what the registries hold."""

from pathlib import Path

from visual_rl_stack.core.policy import KIND_LABELS, POLICY_KINDS
from visual_rl_stack.core.rewards import reward_names, REWARDS

DOC = Path(__file__).resolve().parent.parent / 'docs' / 'architecture.md'
PREFIX = 'visual_rl_stack.'


def _table(heading: str) -> dict[str, list[str]]:
    """Return the first table under ``## heading`` as first cell (unquoted) -> the other cells."""
    text = DOC.read_text()
    start = text.index(f'\n## {heading}')
    end = text.find('\n## ', start + 1)
    rows = [line.strip().strip('|').split('|') for line in text[start:end].splitlines()
            if line.startswith('| `')]
    return {cells[0].strip().strip('`'): [c.strip() for c in cells[1:]] for cells in rows}


def _code(cell: str) -> str:
    """Return a cell's single code span without the backquotes."""
    return cell.strip('`')


def test_the_policy_kind_table_is_the_registry():
    table = _table('Policies')
    assert sorted(table) == sorted(POLICY_KINDS)
    for kind, (label, opener, _layout) in table.items():
        assert label == KIND_LABELS[kind], kind
        assert PREFIX + _code(opener) == POLICY_KINDS[kind], kind


def test_the_reward_table_is_the_registry():
    table = _table('Rewards')
    assert sorted(table) == reward_names()
    for name, (factory, pays, options, needs, traits) in table.items():
        spec = REWARDS[name]
        assert PREFIX + _code(factory) == spec.entry_point, name
        assert pays == spec.description, name
        assert [_code(o.strip()) for o in options.split(',') if o.strip()] == list(
            spec.options), name
        assert needs == (spec.needs.what if spec.needs else ''), name
        assert sorted(_code(t.strip()) for t in traits.split(',') if t.strip()) == sorted(
            spec.traits), name
