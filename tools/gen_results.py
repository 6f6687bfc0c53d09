#!/usr/bin/env python3
"""
Generate docs/results.md and README.md's shipped-models table from the model cards.

The shipped numbers live on the cards (``models/*/model.json``: task,
observations, evaluation with its command, retrain commands); the few numbers
that are on no card (the scripted experts, a base evaluated the way its
residual runs it) live in ``docs/results_extra.json``, each with the command
that measured it. This script writes both into ``docs/results.md`` and into
the block between ``<!-- models:begin -->`` and ``<!-- models:end -->`` in
``README.md``::

    python tools/gen_results.py            # rewrite them
    python tools/gen_results.py --check    # exit 1, with a diff, if they are stale

Standard library only: it runs without the package or its dependencies.
"""

import argparse
import difflib
import json
from pathlib import Path
import sys
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path('docs') / 'results.md'
EXTRA = Path('docs') / 'results_extra.json'
README = Path('README.md')
MODELS = Path('models')
CARD = 'model.json'
BEGIN = '<!-- models:begin -->'
END = '<!-- models:end -->'
TASK_ORDER = ('reach', 'lift', 'push', 'pick_place', 'stack', 'stack3', 'peg_insert')
TASK_NOTES = {'stack': '2 blocks', 'stack3': '3 blocks',
              'peg_insert': '30 mm peg, 32 mm hole'}
#: Row order inside a task's table: expert, BC, BC variants, BC + residual.
RANK = {'expert': 0, 'bc': 1, 'extra': 2, 'residual': 3}
#: Card kind of a keypoint affordance model: no success rate, its own section.
AFFORDANCE = 'affordance'


def load_cards(root: Path) -> list:
    """Return every shipped model card under ``root/models``, sorted by name."""
    cards = []
    for path in sorted((root / MODELS).glob(f'*/{CARD}')):
        card = json.loads(path.read_text())
        card.setdefault('name', path.parent.name)
        cards.append(card)
    return cards


def load_extra(root: Path) -> dict:
    """Return the hand-written numbers (``docs/results_extra.json``)."""
    return json.loads((root / EXTRA).read_text())


def seed_range(seed_start: int, episodes: int) -> str:
    """Return the evaluation seeds as ``first-last``."""
    return f'{seed_start}-{seed_start + episodes - 1}'


def success(successes: int, episodes: int) -> str:
    """Return ``successes / episodes (rate %)``."""
    return f'{successes} / {episodes} ({100 * successes / episodes:.0f} %)'


def code(text: str) -> str:
    """Return ``text`` as inline code that is safe inside a table cell."""
    return '`' + text.replace('|', '\\|') + '`'


def method_of(card: dict) -> str:
    """Describe how a shipped model was trained."""
    obs = card.get('obs_mode', '?')
    if card.get('kind') == 'residual':
        base = card.get('training', {}).get('base', '?')
        return f'BC + residual (ResiP) over `{base}`, {obs} observations'
    return f'diffusion BC, {obs} observations'


def card_row(card: dict, extra: dict) -> dict:
    """Return the table row of one shipped model."""
    evaluation = card['evaluation']
    machine = extra.get('model_machines', {}).get(card['name'],
                                                  extra.get('default_machine', '?'))
    return {'task': card['task'], 'policy': card['name'], 'method': method_of(card),
            'successes': evaluation['successes'], 'episodes': evaluation['episodes'],
            'seed_start': evaluation['seed_start'],
            'date': str(evaluation.get('date', '?'))[:10],
            'machine': evaluation.get('machine', machine),
            'command': evaluation['command'],
            'weights': card.get('weights_dtype', 'float16'),
            'rank': RANK['residual' if card.get('kind') == 'residual' else 'bc']}


def extra_row(row: dict, extra: dict) -> dict:
    """Return the table row of one hand-written number."""
    out = dict(row)
    out.setdefault('machine', extra.get('default_machine', '?'))
    out['rank'] = RANK['expert' if row['policy'] == 'expert' else 'extra']
    return out


def task_key(task: str) -> tuple:
    """Sort tasks in the order of TASK_ORDER, unknown ones after, by name."""
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def _row_cells(row: dict) -> str:
    note = f"; {row['note']}" if row.get('note') else ''
    policy = 'expert' if row['policy'] == 'expert' else f"`{row['policy']}`"
    rate = success(row['successes'], row['episodes'])
    return (f"| {policy} | {row['method']}{note} | **{rate}**"
            f" | {row['episodes']} | {seed_range(row['seed_start'], row['episodes'])}"
            f" | {row['date']} | {row['machine']} | {code(row['command'])} |")


def policy_cards(cards: list) -> list:
    """Return the cards of policies (every kind but affordance models)."""
    return [card for card in cards if card.get('kind') != AFFORDANCE]


def affordance_section(cards: list) -> list:
    """Return the lines of the affordance models' section (empty without one)."""
    out = []
    for card in (c for c in cards if c.get('kind') == AFFORDANCE):
        out += ['', f"## Affordance model `{card['name']}`", '',
                f"{card.get('description', '')}. Grasp within 2 cm: the fraction of",
                'episodes whose grasp keypoint, lifted to the world, lies within 2 cm of the',
                'privileged grasp point (a failed query counts as not within); errors are',
                'medians over the episodes; latency is the median per query.', '',
                '| task | grasp within 2 cm | grasp error | target error | latency | seeds '
                '| date | command |', '|---|---|---|---|---|---|---|---|']
        for task, row in sorted(card['evaluation']['per_task'].items(),
                                key=lambda item: task_key(item[0])):
            out.append(f"| {task} | **{100 * row['within_2cm']:.0f} %** of {row['episodes']}"
                       f" | {1000 * row['median_error_m']:.1f} mm"
                       f" | {1000 * row['target_median_error_m']:.1f} mm"
                       f" | {row['latency_ms']:.0f} ms"
                       f" | {seed_range(row['seed_start'], row['episodes'])}"
                       f" | {str(card['evaluation'].get('date', '?'))[:10]}"
                       f" | {code(row['command'])} |")
    return out


def studies_section(extra: dict) -> list:
    """Return the lines of the measured comparisons (``studies`` in results_extra.json)."""
    out = []
    for study in extra.get('studies', []):
        columns = study['columns']
        out += ['', f"## {study['title']}", '', *study.get('summary', []), '',
                '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
        for row in study['rows']:
            if len(row) != len(columns):
                raise ValueError(f"study {study['title']!r}: row {row} has {len(row)} cells "
                                 f'for {len(columns)} columns')
            out.append('| ' + ' | '.join(str(cell) for cell in row) + ' |')
        out += ['', 'Reproduce:', '', '```', *study['commands'], '```']
    return out


def card_commands(card: dict) -> list:
    """Return the commands that rebuild a card's model and measure it."""
    evaluation = card['evaluation']
    if card.get('kind') == AFFORDANCE:
        measured = [row['command'] for _, row in sorted(evaluation['per_task'].items(),
                                                        key=lambda item: task_key(item[0]))]
    else:
        measured = [evaluation['command']]
    return list(card.get('retrain', [])) + measured


def render_results(cards: list, extra: dict) -> str:
    """Return the text of docs/results.md."""
    shipped = [card_row(card, extra) for card in policy_cards(cards)]
    rows = shipped + [extra_row(row, extra) for row in extra.get('rows', [])]
    tasks = sorted({row['task'] for row in rows}, key=task_key)
    out = [
        '# Results',
        '',
        '<!-- Generated by tools/gen_results.py from models/*/model.json and',
        '     docs/results_extra.json: edit those and rerun it, not this file. -->',
        '',
        'The current shipped numbers. Every success rate is `vrl eval` in process',
        'on 100 episodes (seeds 1000-1099, disjoint from the demonstration and',
        'training seeds, which start at 0), each with the command that measured it.',
        'BC models run at their shipped defaults (sampled chunks); a residual runs',
        'its frozen base the way it was trained over it (deterministic, DDIM 10).',
        'A `runs/...` policy in a command is the run folder the model was shipped',
        'from: rebuild it with the commands at the end, or evaluate the shipped copy',
        'by its name (`--policy bc_state_lift`); float16 copies give close but not',
        "episode-identical results, float32 ones the run's own.",
        '',
        'How these were reached, and everything that did not work, is in',
        '[experiments/](experiments/README.md).',
        '',
        'Machines:',
        '',
    ]
    for key, text in sorted(extra.get('machines', {}).items()):
        out.append(f'- `{key}`: {text}.')
    out += ['', '## Shipped models', '',
            '| model | task | method | success | seeds | weights | reproduce |',
            '|---|---|---|---|---|---|---|']
    for row in sorted(shipped, key=lambda r: (task_key(r['task']), r['rank'], r['policy'])):
        out.append(f"| `{row['policy']}` | {row['task']} | {row['method']}"
                   f" | **{success(row['successes'], row['episodes'])}**"
                   f" | {seed_range(row['seed_start'], row['episodes'])} | {row['weights']}"
                   f" | {code(row['command'])} |")
    out += affordance_section(cards)
    out += studies_section(extra)
    for task in tasks:
        note = f' ({TASK_NOTES[task]})' if task in TASK_NOTES else ''
        out += ['', f'## {task}{note}', '',
                '| policy | method | success | episodes | seeds | date | machine | command |',
                '|---|---|---|---|---|---|---|---|']
        task_rows = sorted((r for r in rows if r['task'] == task),
                           key=lambda r: (r['rank'], r['policy']))
        out += [_row_cells(row) for row in task_rows]
        if not any(r['rank'] in (RANK['bc'], RANK['residual']) for r in task_rows):
            out += ['', 'No trained model is shipped for this task.']
    out += ['', '## Rebuilding the shipped models', '',
            'Each card (`models/<name>/model.json`) holds the commands that rebuild',
            'its model from nothing, then the evaluation that measured it; ship the',
            'result with `vrl models add RUN NAME --eval EVAL.json` (`--float32` for',
            'the float32 ones).']
    for card in cards:
        out += ['', f"`{card['name']}`: {card.get('description', '')}.", '', '```']
        out += card_commands(card) + ['```']
    return '\n'.join(out) + '\n'


def render_models_block(cards: list) -> str:
    """Return README.md's shipped-models table, markers included."""
    out = [BEGIN,
           '<!-- generated by tools/gen_results.py from models/*/model.json -->',
           '| model | task | method | success (seeds 1000-1099) |',
           '|---|---|---|---|']
    for card in sorted(policy_cards(cards), key=lambda c: (task_key(c['task']), c['name'])):
        evaluation = card['evaluation']
        out.append(f"| `{card['name']}` | {card['task']} | {method_of(card)}"
                   f" | {success(evaluation['successes'], evaluation['episodes'])} |")
    out.append(END)
    return '\n'.join(out)


def with_models_block(readme: str, block: str) -> str:
    """Return ``readme`` with the text between the markers replaced by ``block``."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f'README.md has no {BEGIN} ... {END} block')
    return readme[:start] + block + readme[end + len(END):]


def expected(root: Path) -> dict:
    """Return {relative path: text} of every file this script writes."""
    cards, extra = load_cards(root), load_extra(root)
    readme = (root / README).read_text()
    return {RESULTS: render_results(cards, extra),
            README: with_models_block(readme, render_models_block(cards))}


def main(argv: Optional[list] = None) -> int:
    """Write the generated files, or with ``--check`` report those that differ."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 with a diff if a file is out of date')
    parser.add_argument('--root', type=Path, default=ROOT,
                        help='repository root (default: the one holding this script)')
    args = parser.parse_args(argv)
    try:
        files = expected(args.root)
    except (OSError, ValueError, KeyError) as error:
        print(f'gen_results: {error!r}', file=sys.stderr)
        return 2
    stale = []
    for rel, text in files.items():
        path = args.root / rel
        current = path.read_text() if path.exists() else ''
        if current == text:
            continue
        if args.check:
            stale.append(rel)
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=f'{rel} (on disk)', tofile=f'{rel} (from the model cards)'))
        else:
            path.write_text(text)
            print(f'wrote {rel}')
    if stale:
        print(f"\n{', '.join(map(str, stale))} differ from what the model cards produce: "
              'run python tools/gen_results.py', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
