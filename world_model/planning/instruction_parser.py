"""
The embedded planner: a deterministic reading of tabletop instructions into goals.

It needs no weights and runs on every query. An instruction is cut into
clauses at connectives ("then", "and", commas; "after"/"once" and "before"
reorder them); each clause gives a verb, object mentions ("[colour] noun",
with synonyms: a block is a cube, a goal a target, a socket a hole) and a
relation word (on/onto/into/to). The mention after the relation is the
destination, the other one the object; "it" is the last clause's object and a
clause without a verb takes the verb before it. A clause that only names a
destination ("on the blue target, put the green cube") joins its neighbour.

Mentions are grounded in the scene's named objects when the scene is known
(a colour alone, "the red one", is enough when one object has it), else as
``"<colour> <kind>"``. Whatever cannot be grounded (no verb, no object, an
unsupported relation such as "next to", an object the scene lacks, two that
fit) is a :class:`.plan.PlanError` that says what was understood.
"""

from dataclasses import dataclass, field, replace
import re
from typing import Iterable, Optional, Sequence

from visual_rl_stack.sim.scene_objects import SceneObject

from . import vocabulary as words
from .plan import Goal, Plan, PlanError, validate

NAME = 'rules'


@dataclass(frozen=True)
class Mention:
    """An object phrase of a clause: colour ('' if none) and kind ('' for "the red one")."""

    colour: str
    kind: str
    start: int
    pronoun: bool = False

    def text(self) -> str:
        """Return the mention as written in a name ('red cube', 'red one', 'it')."""
        if self.pronoun:
            return 'it'
        return ' '.join(w for w in (self.colour, self.kind or 'one') if w)


@dataclass
class Clause:
    """What one clause says: its action, its mentions and where its relation word is."""

    text: str
    action: Optional[str] = None
    mentions: list[Mention] = field(default_factory=list)
    relation: Optional[str] = None
    relation_at: int = -1
    effector: bool = False

    @property
    def destination_only(self) -> bool:
        """Return whether the clause is just "on the blue target" (no verb, one mention)."""
        return (self.action is None and self.relation is not None and len(self.mentions) == 1
                and self.mentions[0].start > self.relation_at)

    def split_mentions(self) -> tuple[Optional[Mention], Optional[Mention]]:
        """Return (object, destination); the destination is the mention after the relation."""
        destination = None
        if self.relation is not None:
            after = [m for m in self.mentions if m.start > self.relation_at]
            destination = after[0] if after else None
        rest = [m for m in self.mentions if m is not destination]
        return (rest[0] if rest else None), destination


def normalise(instruction: str) -> str:
    """Return the instruction lower-cased, punctuation but , ; . removed, spaces collapsed."""
    text = re.sub(r'[^a-z0-9,;.\- ]+', ' ', instruction.lower().replace("'s", ''))
    return ' '.join(re.sub(r'\b(please|the|a|an|now|carefully|gently|slowly)\b', ' ',
                           text).split())


def ordered_clauses(text: str) -> list[str]:
    """Cut ``text`` at connectives and return the clauses in the order they are to be done."""
    pieces = words.CONNECTIVE_RE.split(text)
    ordered: list[str] = []
    pending_later: list[str] = []
    connective = None
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        if words.CONNECTIVE_RE.fullmatch(piece):
            if piece in words.PREREQUISITE + words.LATER:
                connective = piece
            continue
        if connective in words.PREREQUISITE and ordered:
            ordered.insert(len(ordered) - 1, piece)
        elif connective in words.LATER and not ordered:
            pending_later.append(piece)
        else:
            ordered.append(piece)
            ordered.extend(pending_later)
            pending_later = []
        connective = None
    return ordered + pending_later


def read_clause(text: str) -> Clause:
    """Return the verb, mentions and relation of one clause (nothing grounded yet)."""
    clause = Clause(text)
    verb = words.VERB_RE.search(text)
    if verb:
        clause.action = words.VERBS[verb.group(0)]
    clause.effector = bool(words.EFFECTOR_RE.search(text))
    for match in words.MENTION_RE.finditer(text):
        colour = match.group('colour') or ''
        kind = words.NOUNS[match.group('noun')] if match.group('noun') else ''
        if kind or colour:
            clause.mentions.append(Mention(colour, kind, match.start()))
    for match in words.PRONOUN_RE.finditer(text):
        clause.mentions.append(Mention('', '', match.start(), pronoun=True))
    clause.mentions.sort(key=lambda m: m.start)
    start = verb.end() if verb else 0
    relation = words.RELATION_RE.search(text, start)
    if relation is None or (clause.mentions and relation.start() > clause.mentions[-1].start):
        relation = words.RELATION_RE.search(text)
    if relation is not None and any(m.start > relation.start() for m in clause.mentions):
        clause.relation = words.RELATIONS[relation.group(0)]
        clause.relation_at = relation.start()
    return clause


def joined(main: Clause, fragment: Clause) -> Clause:
    """Return ``main`` (a verb, no destination) read on with a destination-only ``fragment``."""
    offset = len(main.text) + 1
    mentions = main.mentions + [replace(m, start=m.start + offset) for m in fragment.mentions]
    return Clause(f'{main.text} {fragment.text}', main.action, mentions, fragment.relation,
                  fragment.relation_at + offset, main.effector)


def merge_fragments(clauses: list[Clause]) -> list[Clause]:
    """Join each destination-only clause to the neighbour that has a verb but no destination."""
    merged: list[Clause] = []
    i = 0
    while i < len(clauses):
        clause = clauses[i]
        nxt = clauses[i + 1] if i + 1 < len(clauses) else None
        if clause.destination_only and nxt is not None and nxt.relation is None:
            merged.append(joined(nxt, clause))
            i += 2
            continue
        if clause.destination_only and merged and merged[-1].relation is None:
            merged.append(joined(merged.pop(), clause))
        else:
            merged.append(clause)
        i += 1
    return merged


class Grounder:
    """Turns mentions into scene object names (or canonical names when no scene is known)."""

    def __init__(self, scene: Optional[Sequence[SceneObject]]):
        """Ground in ``scene`` (None: accept any '<colour> <kind>')."""
        self.scene = None if scene is None else list(scene)
        #: role -> kind of the object last named in it ("the green one" refers back to it).
        self.last_kind: dict[str, str] = {}

    def name(self, mention: Mention, previous: Optional[str], role: str) -> str:
        """Return the object name ``mention`` refers to, or raise saying why it cannot."""
        if mention.pronoun:
            if previous is None:
                raise PlanError(f'"it" as the {role} refers to nothing said before')
            return previous
        if self.scene is None:
            # "the green one" is of the kind last named in the same role (the destination
            # before), else of the object it goes with, as a person reads it.
            kind = (mention.kind or self.last_kind.get(role)
                    or (previous.split()[-1] if previous else ''))
            if not kind:
                raise PlanError(f'{mention.text()!r} names no kind of object, nothing before it '
                                'does, and no scene is known to tell which one it is')
            self.last_kind[role] = kind
            return ' '.join(w for w in (mention.colour, kind) if w)
        fits = [o.name for o in self.scene
                if (not mention.kind or o.kind == mention.kind)
                and (not mention.colour or o.colour == mention.colour)]
        if len(fits) == 1:
            return fits[0]
        have = ', '.join(o.name for o in self.scene) or 'nothing'
        if not fits:
            raise PlanError(f'the {role} {mention.text()!r} is not in the scene (it has: {have})')
        raise PlanError(f'the {role} {mention.text()!r} could be any of {", ".join(fits)}; '
                        f'name its colour')


def clause_goal(clause: Clause, grounder: Grounder, previous: Optional[str],
                pending: Optional[str]) -> tuple[Optional[Goal], Optional[str]]:
    """
    Return the clause's goal (None for a pick whose end comes later) and the pick left pending.

    A pick ("grab the cube") waits for the next clause: "drop it on the
    target" makes it a move, anything else (or the end) a lift. A clause
    that names only where to go ("move the gripper to the ball") is a reach.
    """
    obj_mention, dest_mention = clause.split_mentions()
    action = clause.action
    if obj_mention is None or obj_mention.pronoun:
        carried = pending or previous
        if obj_mention is None and dest_mention is not None and (
                clause.effector or action == 'reach' or carried is None):
            return Goal('reach', grounder.name(dest_mention, previous, 'place to reach')), None
        if carried is None:
            raise PlanError(f'{clause.text!r}: no object to act on')
        obj = carried
    else:
        obj = grounder.name(obj_mention, previous, 'object')
    if action == 'reach' or (clause.effector and dest_mention is None):
        return Goal('reach', obj), None
    if dest_mention is None:
        if action == 'lift':
            return Goal('lift', obj), None
        if action == 'pick':
            return None, obj
        raise PlanError(f'{clause.text!r}: {action or "move"} {obj} where? no destination '
                        f'named (say on/onto, into or to what)')
    dest = grounder.name(dest_mention, obj, 'destination')
    return Goal(destination_goal(action, dest), obj, dest), None


def destination_goal(action: Optional[str], destination: str) -> str:
    """Return the goal kind of an action with a destination (a hole is inserted into)."""
    if action == 'push':
        return 'push'
    if action == 'insert' or destination.split()[-1] == 'hole':
        return 'insert'
    return 'move'


def parse_instruction(instruction: str,
                      scene: Optional[Iterable[SceneObject]] = None) -> Plan:
    """Return the plan of ``instruction`` (checked against ``scene`` when given), or raise."""
    text = normalise(instruction)
    if not text:
        raise PlanError('the instruction is empty')
    scene = None if scene is None else list(scene)
    clauses = merge_fragments([read_clause(c) for c in ordered_clauses(text)])
    grounder = Grounder(scene)
    goals: list[Goal] = []
    previous: Optional[str] = None
    pending: Optional[str] = None
    action: Optional[str] = None
    try:
        unsupported = words.UNSUPPORTED_RE.search(text)
        if unsupported:
            raise PlanError(f'the relation {unsupported.group(0)!r} is not supported; say '
                            f'on/onto, into or to')
        for clause in clauses:
            if clause.action is None:
                clause.action = action
            if clause.action is None and not clause.mentions:
                continue
            action = clause.action
            goal, new_pending = clause_goal(clause, grounder, previous, pending)
            if pending is not None and (goal is None or goal.obj != pending):
                goals.append(Goal('lift', pending))
            pending = new_pending
            if goal is not None:
                goals.append(goal)
            previous = pending or (goal.obj if goal is not None else previous)
        if pending is not None:
            goals.append(Goal('lift', pending))
        if not goals:
            raise PlanError('no action on an object found (verbs such as put, stack, push, '
                            'insert, lift, reach; objects such as "the red cube")')
        plan = Plan(instruction, tuple(goals), NAME)
        if scene is not None:
            validate(plan, scene)
        return plan
    except PlanError as error:
        seen = '; '.join(g.describe() for g in goals) or 'nothing'
        clauses_seen = ' | '.join(f'{c.text!r} (verb {c.action}, objects '
                                  f'{[m.text() for m in c.mentions]}, relation {c.relation})'
                                  for c in clauses)
        raise PlanError(f'cannot plan {instruction!r}: {error}. Understood: {seen}. '
                        f'Clauses: {clauses_seen}') from None
