"""
Instructions of the keypoint model: templates per task, and the word-level tokenizer.

Every scene gets several instructions that name its objects by colour and
role, so that the grasp and target labels follow the text, not the task: in a
stack scene, 'put the blue cube on the red cube' and 'stack the red cube on the
blue cube' swap them. Each task's first template, filled with the task's
default colours, is exactly the simulator's own instruction
(:meth:`Task.instruction`), so the model answers the instructions the RL loop
asks with. The tokenizer is a ``tokenizers`` WordLevel model over the training
vocabulary (lower case, words and punctuation), with ``[UNK]`` for any other
word and ``[PAD]`` as index 0; it is saved beside the weights.
"""

from dataclasses import dataclass
import itertools
from pathlib import Path
import random
from typing import Iterable, Mapping, Sequence

from tokenizers import normalizers, pre_tokenizers, Tokenizer
from tokenizers.models import WordLevel

PAD, UNK = '[PAD]', '[UNK]'
TOKENIZER_FILE = 'tokenizer.json'
#: The colour names scenes are painted with (:data:`.scene.PALETTE` holds their RGB).
COLOR_NAMES = ('red', 'green', 'blue', 'yellow', 'orange', 'purple')

#: Templates per task; ``{grasp}`` names the object to move, ``{target}`` where it goes.
TEMPLATES: Mapping[str, tuple[str, ...]] = {
    'lift': ('pick up the {grasp} cube and lift it', 'pick up the {grasp} cube',
             'pick up the {grasp} block', 'lift the {grasp} cube', 'lift the {grasp} block up',
             'grasp the {grasp} cube and raise it', 'raise the {grasp} cube'),
    'push': ('push the {grasp} block onto the {target} circle',
             'push the {grasp} block to the {target} circle',
             'slide the {grasp} block onto the {target} circle',
             'push the {grasp} cube into the {target} goal',
             'move the {grasp} block to the {target} circle'),
    'pick_place': ('put the {grasp} cube on the {target} target',
                   'place the {grasp} cube onto the {target} target',
                   'move the {grasp} cube to the {target} target',
                   'pick up the {grasp} cube and put it on the {target} target',
                   'put the {grasp} block on the {target} target'),
    'stack': ('stack the {grasp} cube on the {target} cube',
              'put the {grasp} cube on the {target} cube',
              'place the {grasp} cube onto the {target} cube',
              'put the {grasp} block on top of the {target} block',
              'stack the {grasp} block onto the {target} block',
              'pick up the {grasp} cube and place it on the {target} cube'),
    'peg_insert': ('insert the {grasp} peg into the square hole',
                   'insert the {grasp} peg into the {target} hole',
                   'put the {grasp} peg in the hole',
                   'put the {grasp} peg into the {target} square hole',
                   'insert the peg into the hole'),
}
#: Stack3's two-stage instruction: the first stage decides the keypoints.
TWO_STAGE = ('stack the {grasp} cube on the {target} cube, '
             'then the {third} cube on the {grasp} cube')


@dataclass(frozen=True)
class Instruction:
    """An instruction and the roles of the scene's objects it names."""

    text: str
    grasp: str
    target: str


def instructions(task: str, colors: Mapping[str, str]) -> list[Instruction]:
    """
    Return every instruction of a scene, the task's own phrasing first.

    ``colors`` maps the scene's object roles to colour names: ``object`` and
    ``goal`` (lift, push, pick_place, peg_insert) or ``cube0``, ``cube1``, ...
    (stack, stack3, bottom-up as the task builds them). Stack instructions
    cover every ordered pair of cubes, so that the same scene is labelled both
    ways round.
    """
    if task.startswith('stack'):
        cubes = sorted(role for role in colors if role.startswith('cube'))
        found = []
        if len(cubes) == 3:
            below, top, third = cubes
            found.append(Instruction(TWO_STAGE.format(grasp=colors[top], target=colors[below],
                                                      third=colors[third]), top, below))
        for below, top in [cubes[:2]] + [p for p in itertools.permutations(cubes, 2)
                                         if list(p) != cubes[:2]]:
            found += [Instruction(t.format(grasp=colors[top], target=colors[below]), top, below)
                      for t in TEMPLATES['stack']]
        return found
    return [Instruction(t.format(grasp=colors['object'], target=colors.get('goal', '')),
                        'object', 'goal') for t in TEMPLATES[task]]


def choose(found: Sequence[Instruction], count: int, rng: random.Random) -> list[Instruction]:
    """Return the task's own phrasing and ``count - 1`` others drawn without replacement."""
    rest = list(found[1:])
    return [found[0]] + rng.sample(rest, min(count - 1, len(rest)))


def build_tokenizer(texts: Iterable[str]) -> Tokenizer:
    """Return a WordLevel tokenizer over the words of ``texts`` ([PAD] 0, [UNK] 1)."""
    base = _bare(WordLevel({PAD: 0, UNK: 1}, unk_token=UNK))
    words = sorted({word for text in texts for word, _ in
                    base.pre_tokenizer.pre_tokenize_str(base.normalizer.normalize_str(text))})
    vocab = {PAD: 0, UNK: 1}
    for word in words:
        vocab.setdefault(word, len(vocab))
    return _bare(WordLevel(vocab, unk_token=UNK))


def _bare(model: WordLevel) -> Tokenizer:
    """Return a tokenizer of ``model`` that lower-cases and splits words and punctuation."""
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def all_texts() -> list[str]:
    """Return every template with placeholders as words, for the vocabulary."""
    texts = []
    for template in list(itertools.chain(*TEMPLATES.values())) + [TWO_STAGE]:
        texts += [template.format(grasp=color, target=color, third=color)
                  for color in COLOR_NAMES]
    return texts


def encode(tokenizer: Tokenizer, text: str, length: int) -> list[int]:
    """Return the token ids of ``text`` cut or padded (with 0) to ``length``."""
    ids = tokenizer.encode(text).ids[:length]
    return ids + [0] * (length - len(ids))


def save_tokenizer(tokenizer: Tokenizer, folder: Path) -> Path:
    """Write the tokenizer as ``tokenizer.json`` in ``folder``; return the path."""
    path = Path(folder) / TOKENIZER_FILE
    tokenizer.save(str(path))
    return path


def load_tokenizer(folder: Path) -> Tokenizer:
    """Read ``tokenizer.json`` from ``folder``."""
    path = Path(folder) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f'no {TOKENIZER_FILE} in {folder}')
    return Tokenizer.from_file(str(path))
