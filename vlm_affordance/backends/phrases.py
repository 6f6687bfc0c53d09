"""
The object and destination phrases of an instruction, for models that only detect.

PaliGemma and Florence-2 locate phrases, they do not follow instructions: they
are asked for the object to move and the place it goes, and their reply is
labelled with those phrases, which :func:`detector_aliases` maps back to the
grasp and target keypoints. The split is deliberately simple (a leading verb,
then the first preposition of place), which fits the instructions the tasks
give ('put the green cube on the blue target').
"""

import re
from typing import Optional

_VERB = re.compile(r'^(?:please\s+)?(?:pick\s+up|pick|put|place|move|push|slide|insert|stack|lift|'
                   r'grasp|grab|take|bring|carry|drop|set|reach|touch)(?:\s+|$)')
_PLACE = re.compile(r'\s(?:on\s+top\s+of|next\s+to|onto|into|inside|towards?|on|in|to|at|over)\s')
_CLAUSE = re.compile(r',|;|\bthen\b|\band\b')
_ARTICLE = re.compile(r'^(?:the|a|an)\b\s*')


def _noun_phrase(text: str) -> str:
    """Return ``text`` without a leading article and surrounding space or punctuation."""
    return _ARTICLE.sub('', text.strip(' .!?')).strip()


def object_phrases(instruction: str) -> tuple[str, Optional[str]]:
    """
    Return ``(object, destination)`` of the instruction's first clause; no destination is None.

    ``'pick up the red cube and lift it'`` gives ``('red cube', None)``.
    """
    clause = _CLAUSE.split(' '.join(instruction.lower().split()))[0].strip()
    clause = _VERB.sub('', clause)
    place = _PLACE.search(clause)
    thing = _noun_phrase(clause[:place.start()] if place else clause)
    destination = _noun_phrase(clause[place.end():]) if place else ''
    if not thing:
        raise ValueError(f'no object to locate in the instruction {instruction!r}')
    return thing, destination or None


def detector_aliases(instruction: str) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """
    Return the phrases to locate and the keypoints each one's detection stands for.

    With no destination (a lift) the object's own location is the target too:
    the approach heights above it are the lifting stage's business.
    """
    thing, destination = object_phrases(instruction)
    if destination is None or destination == thing:
        return [thing], {thing: ('grasp', 'target')}
    return [thing, destination], {thing: ('grasp',), destination: ('target',)}
