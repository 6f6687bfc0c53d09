"""
The words the embedded planner understands: verbs, object nouns, relations, connectives.

Each list maps the surface words users write to the few meanings a plan is
made of. Multi-word phrases come first in each pattern so that "pick up" wins
over "pick" and "on top of" over "on".
"""

import re

from visual_rl_stack.sim.scene_objects import OBJECT_COLOURS

#: Verb phrase -> action. 'pick' is a grasp that becomes a lift or the start of a move.
VERBS = {
    'pick up': 'pick', 'pick': 'pick', 'grab': 'pick', 'grasp': 'pick', 'take': 'pick',
    'seize': 'pick', 'get': 'pick', 'collect': 'pick',
    'lift': 'lift', 'raise': 'lift', 'hold up': 'lift', 'elevate': 'lift',
    'put': 'place', 'place': 'place', 'set': 'place', 'drop': 'place', 'move': 'place',
    'bring': 'place', 'carry': 'place', 'stack': 'place', 'position': 'place', 'lay': 'place',
    'deposit': 'place', 'transfer': 'place', 'goes': 'place', 'go': 'place', 'stand': 'place',
    'push': 'push', 'slide': 'push', 'shove': 'push', 'nudge': 'push',
    'insert': 'insert', 'plug': 'insert', 'fit': 'insert', 'stick': 'insert', 'sink': 'insert',
    'reach': 'reach', 'touch': 'reach', 'approach': 'reach', 'point at': 'reach',
}

#: Noun -> object kind of :data:`visual_rl_stack.sim.scene_objects.OBJECT_KINDS`.
NOUNS = {
    'cube': 'cube', 'block': 'cube', 'box': 'cube', 'brick': 'cube',
    'target': 'target', 'goal': 'target', 'marker': 'target', 'disc': 'target',
    'disk': 'target', 'circle': 'target', 'spot': 'target', 'pad': 'target', 'zone': 'target',
    'area': 'target', 'mark': 'target',
    'ball': 'ball', 'sphere': 'ball', 'dot': 'ball',
    'peg': 'peg', 'pin': 'peg', 'rod': 'peg', 'post': 'peg',
    'hole': 'hole', 'socket': 'hole', 'slot': 'hole', 'opening': 'hole', 'receptacle': 'hole',
    # A colour alone ("the red one") names the object of that colour the scene has.
    'one': '',
}

#: The robot's own hand: "move the gripper to X" is a reach of X.
EFFECTOR = ('end effector', 'end-effector', 'gripper', 'hand', 'arm', 'robot', 'tool', 'fingers',
            'claw')

#: Relation phrase -> relation of a destination to the moved object.
RELATIONS = {
    'on top of': 'on', 'onto': 'on', 'on to': 'on', 'upon': 'on', 'atop': 'on', 'on': 'on',
    'over': 'on', 'into': 'into', 'inside': 'into', 'in': 'into', 'down into': 'into',
    'towards': 'to', 'toward': 'to', 'to': 'to', 'at': 'to', 'onto the top of': 'on',
}

#: Relations the planner refuses with a reason instead of guessing.
UNSUPPORTED_RELATIONS = ('next to', 'beside', 'behind', 'in front of', 'under', 'below',
                         'beneath', 'left of', 'right of', 'near', 'away from', 'off')

#: Words that separate clauses in order; 'after'/'once' and 'before' reorder them.
SEQUENCE = ('and then', 'after that', 'afterwards', 'then', 'next', 'finally', 'first', 'and',
            ',', ';', '.')
PREREQUISITE = ('after', 'once', 'when')
LATER = ('before',)

#: Pronouns that stand for the object of the clause before.
PRONOUNS = ('it', 'that', 'this')


def alternation(phrases) -> str:
    """Return a regex alternation of ``phrases``, longest first, matched on word boundaries."""
    ordered = sorted(phrases, key=len, reverse=True)
    return '|'.join(re.escape(p) if not p[0].isalpha() else rf'\b{re.escape(p)}\b'
                    for p in ordered)


VERB_RE = re.compile(alternation(VERBS))
_NOUNS = '|'.join(sorted(NOUNS, key=len, reverse=True))
_ADJECTIVES = 'square|round|small|big|little|flat|large|tiny'
#: "[colour] [adjectives] noun" or a colour alone ("the blue on the green"); empty matches skipped.
MENTION_RE = re.compile(rf'(?:\b(?P<colour>{"|".join(OBJECT_COLOURS)})\b\s*)?'
                        rf'(?:\b(?:{_ADJECTIVES})\s+)*(?:\b(?P<noun>{_NOUNS})(?:es|s)?\b)?')
EFFECTOR_RE = re.compile(alternation(EFFECTOR))
RELATION_RE = re.compile(alternation(RELATIONS))
UNSUPPORTED_RE = re.compile(alternation(UNSUPPORTED_RELATIONS))
CONNECTIVE_RE = re.compile(f'({alternation(SEQUENCE + PREREQUISITE + LATER)})')
PRONOUN_RE = re.compile(alternation(PRONOUNS))
