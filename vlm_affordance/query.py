"""
Ask any :class:`AffordanceBackend` for an affordance robustly: validate, re-ask, log, cache.

Models misbehave (malformed JSON, points off the image, hallucinated objects,
crashes), so a query never raises for what the model did: it re-asks within a
retry budget and finally answers 'no affordance' with the reason, which the
dense reward turns into a sparse-only reward. Every raw reply is kept in the
result (and optionally appended to a JSONL file), and results are cached per
``(episode id, instruction)`` because KAGI asks once per episode and task; the
cache keeps the ``cache_size`` most recently used, so a node that runs for
days does not keep every episode it saw.

Validation: every name is a known keypoint and the required ones are present;
each point lies in the original image of a view of the prompt (points on the
border pixel's outer half are clamped onto it). When the prompt has candidates,
the keypoints in ``candidate_keypoints`` (by default the grasp and the tool's
function point, which lie on objects) must name a candidate of their view or lie
within ``snap_tolerance`` of one, and are snapped onto it: a model pointing at a
numbered marker lands on the number next to it, so the default tolerance, 5 % of
the image diagonal (9 px at 128x128, 40 px at 640x480), covers a marker and its
label. Targets and approach points may lie anywhere (a goal disc on the table is
no candidate).
"""

from collections import OrderedDict
from dataclasses import dataclass, replace
import json
import math
from pathlib import Path
import time
from typing import Optional, Sequence

from .affordance import (Affordance, AffordanceBackend, Keypoint, KEYPOINT_NAMES, Prompt,
                         ReplyError, REQUIRED_KEYPOINTS)

Key = tuple[str, str]
#: Keypoints snapped onto a candidate unless the backend or the caller says otherwise.
SNAPPED_KEYPOINTS = ('grasp', 'function')


@dataclass(frozen=True)
class Attempt:
    """One ask-and-parse round: the raw reply, why it was refused ('' if accepted), its time."""

    index: int
    reply: str
    error: str
    latency_s: float


@dataclass(frozen=True)
class QueryResult:
    """The validated affordance, or None with the diagnostic; every attempt that led there."""

    affordance: Optional[Affordance]
    diagnostic: str
    attempts: tuple[Attempt, ...]
    latency_s: float
    cached: bool = False

    @property
    def ok(self) -> bool:
        """Return whether an affordance was found."""
        return self.affordance is not None

    @property
    def replies(self) -> tuple[str, ...]:
        """Return the raw replies in the order they came."""
        return tuple(a.reply for a in self.attempts)


def validate(affordance: Affordance, prompt: Prompt, snap_tolerance: float = 0.05,
             candidate_keypoints: Sequence[str] = ('grasp', 'function')) -> Affordance:
    """Return ``affordance`` clamped and snapped to the prompt, or raise ReplyError saying why."""
    if not isinstance(affordance, Affordance):
        raise ReplyError(f'parse returned {type(affordance).__name__}, not an Affordance')
    names = set(affordance.keypoints)
    unknown = sorted(names - set(KEYPOINT_NAMES))
    if unknown:
        raise ReplyError(f'unknown keypoint names {unknown}; known: {list(KEYPOINT_NAMES)}')
    missing = [n for n in REQUIRED_KEYPOINTS if n not in names]
    if missing:
        raise ReplyError(f'missing required keypoints {missing}')
    checked = {name: _check_point(name, kp, prompt, snap_tolerance, candidate_keypoints)
               for name, kp in affordance.keypoints.items()}
    return replace(affordance, keypoints=checked)


def _check_point(name: str, kp: Keypoint, prompt: Prompt, snap_tolerance: float,
                 candidate_keypoints: Sequence[str]) -> Keypoint:
    """Return one keypoint clamped into its image and snapped to a candidate where required."""
    if kp.name != name:
        raise ReplyError(f'keypoint {kp.name!r} is filed under {name!r}')
    if kp.view not in prompt.images:
        raise ReplyError(f'{name}: unknown view {kp.view!r}; views: {list(prompt.images)}')
    if kp.candidate is not None:
        match = [c for c in prompt.candidates if c.number == kp.candidate]
        if not match or match[0].view != kp.view:
            raise ReplyError(f'{name}: no candidate {kp.candidate} in view {kp.view!r}')
        return replace(kp, u=match[0].u, v=match[0].v)
    width, height = prompt.size_of(kp.view)
    try:
        u, v = float(kp.u), float(kp.v)
    except (TypeError, ValueError):
        raise ReplyError(f'{name}: ({kp.u!r}, {kp.v!r}) are not pixel coordinates') from None
    if not (math.isfinite(u) and math.isfinite(v)
            and -0.5 <= u <= width - 0.5 and -0.5 <= v <= height - 0.5):
        raise ReplyError(f'{name}: ({kp.u}, {kp.v}) is outside the {width}x{height} '
                         f'image of view {kp.view!r}')
    kp = replace(kp, u=min(max(u, 0.0), width - 1.0), v=min(max(v, 0.0), height - 1.0))
    if name not in candidate_keypoints or not prompt.candidates:
        return kp
    own = [c for c in prompt.candidates if c.view == kp.view]
    if not own:
        raise ReplyError(f'{name}: view {kp.view!r} has no candidates to snap to')
    nearest = min(own, key=lambda c: math.hypot(c.u - kp.u, c.v - kp.v))
    distance = math.hypot(nearest.u - kp.u, nearest.v - kp.v)
    tolerance = snap_tolerance * math.hypot(width, height)
    if distance > tolerance:
        raise ReplyError(f'{name}: ({kp.u:.1f}, {kp.v:.1f}) is {distance:.1f} px from the '
                         f'nearest candidate (tolerance {tolerance:.1f} px)')
    return replace(kp, u=nearest.u, v=nearest.v, candidate=nearest.number)


class AffordanceQuery:
    """Asks one backend, with validation, a retry budget, a reply log and a per-episode cache."""

    def __init__(self, backend: AffordanceBackend, max_attempts: int = 3,
                 log_path: Optional[Path] = None, snap_tolerance: float = 0.05,
                 candidate_keypoints: Optional[Sequence[str]] = None, cache_size: int = 256):
        """
        Remember the backend and the rules; ``log_path`` gets one JSON line per attempt.

        ``candidate_keypoints`` (the keypoints snapped onto candidates) defaults
        to the backend's ``snapped_keypoints`` where it has one (a model that
        locates points itself is more precise than a region's centre), else
        :data:`SNAPPED_KEYPOINTS`.
        """
        if max_attempts < 1:
            raise ValueError(f'max_attempts must be >= 1, got {max_attempts}')
        if cache_size < 1:
            raise ValueError(f'cache_size must be >= 1, got {cache_size}')
        self.backend = backend
        self.max_attempts = max_attempts
        self.log_path = None if log_path is None else Path(log_path)
        self.snap_tolerance = snap_tolerance
        if candidate_keypoints is None:
            candidate_keypoints = getattr(backend, 'snapped_keypoints', SNAPPED_KEYPOINTS)
        self.candidate_keypoints = tuple(candidate_keypoints)
        self.cache_size = cache_size
        self.cache: OrderedDict[Key, QueryResult] = OrderedDict()

    def __call__(self, prompt: Prompt, episode_id: Optional[str] = None) -> QueryResult:
        """Return the (cached, for a known episode id and instruction) result for ``prompt``."""
        key = None if episode_id is None else (str(episode_id), prompt.instruction)
        if key in self.cache:
            self.cache.move_to_end(key)
            return replace(self.cache[key], cached=True)
        result = self._ask(prompt, episode_id)
        if key is not None:
            self.cache[key] = result
            if len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return result

    def _ask(self, prompt: Prompt, episode_id: Optional[str]) -> QueryResult:
        """Ask until a reply validates or the budget is spent."""
        start = time.perf_counter()
        if not (prompt.instruction or '').strip():
            return QueryResult(None, 'no affordance: the instruction is empty', (), 0.0)
        if not prompt.images:
            return QueryResult(None, 'no affordance: the prompt has no images', (), 0.0)
        attempts: list[Attempt] = []
        for index in range(self.max_attempts):
            began = time.perf_counter()
            reply, affordance, error = '', None, ''
            try:
                reply = self.backend.ask(prompt, index)
                parsed = self.backend.parse(reply, prompt)
                affordance = validate(parsed, prompt, self.snap_tolerance,
                                      self.candidate_keypoints)
                if not affordance.raw_reply:
                    affordance = replace(affordance, raw_reply=reply)
            except ReplyError as problem:
                error = f'invalid reply: {problem}'
            except Exception as problem:  # noqa: BLE001 - a failing model must not stop training
                error = f'backend error: {type(problem).__name__}: {problem}'
            attempt = Attempt(index, str(reply), error, time.perf_counter() - began)
            attempts.append(attempt)
            self._log(attempt, prompt, episode_id)
            if affordance is not None:
                return QueryResult(affordance, 'ok', tuple(attempts), time.perf_counter() - start)
        return QueryResult(None, f'no affordance after {len(attempts)} attempts: {error}',
                           tuple(attempts), time.perf_counter() - start)

    def _log(self, attempt: Attempt, prompt: Prompt, episode_id: Optional[str]) -> None:
        """Append one attempt to the JSONL log, if there is one."""
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        record = {'time': time.time(), 'episode_id': episode_id,
                  'instruction': prompt.instruction, 'backend': self.backend.name,
                  'attempt': attempt.index, 'reply': attempt.reply, 'error': attempt.error,
                  'latency_s': attempt.latency_s}
        with self.log_path.open('a') as log:
            log.write(json.dumps(record) + '\n')
