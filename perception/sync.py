"""
Match camera messages of several views by time stamp.

``message_filters`` is not installable here, so this small, ROS-free class
does what its ApproximateTimeSynchronizer does for the camera node, and also
says which views were missing when a set had to be given up.
"""

from bisect import insort
from dataclasses import dataclass, field
import itertools
from typing import Any, Callable, Optional, Sequence

#: A stream of one camera, e.g. ``('front', 'depth')``.
Key = tuple[str, str]


@dataclass(frozen=True)
class SyncedSet:
    """One item per (view, stream), all stamped within the tolerance of each other."""

    stamp_s: float
    newest: Key
    items: dict[Key, Any]
    stamps: dict[Key, float]

    def item(self, view: str, stream: str) -> Any:
        """Return the item of one view's stream."""
        return self.items[(view, stream)]


@dataclass(frozen=True)
class DroppedSet:
    """An incomplete set that was given up: its stamp and what it lacked."""

    stamp_s: float
    missing: dict[str, tuple[str, ...]]
    reason: str


@dataclass
class SyncStats:
    """Counters for diagnostics."""

    received: int = 0
    emitted: int = 0
    dropped_sets: int = 0
    overflow: int = 0
    late: dict[str, int] = field(default_factory=dict)


class MultiViewSynchronizer:
    """
    Group items of ``views`` x ``streams`` whose stamps lie within ``tolerance_s``.

    Each stream keeps at most ``queue_size`` items. As soon as a set is
    complete it is returned and everything older is discarded; older partial
    sets are counted as dropped, with the streams they lacked. When
    ``max_delay_s`` is given, partial sets that many seconds older than the
    newest stamp seen are given up as well (a view is late or gone). Items
    older than the last returned set are counted as late per view.
    """

    def __init__(self, views: Sequence[str], streams: Sequence[str], tolerance_s: float,
                 queue_size: int, max_delay_s: Optional[float] = None) -> None:
        if not views or len(set(views)) != len(views):
            raise ValueError(f'views must be a non-empty list of distinct names, got {views!r}')
        if not streams or len(set(streams)) != len(streams):
            raise ValueError(f'streams must be a non-empty list of distinct names, '
                             f'got {streams!r}')
        if tolerance_s < 0:
            raise ValueError(f'tolerance_s must be >= 0, got {tolerance_s}')
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        if max_delay_s is not None and max_delay_s < tolerance_s:
            raise ValueError(f'max_delay_s ({max_delay_s}) must be >= tolerance_s ({tolerance_s})')
        self.views = tuple(views)
        self.streams = tuple(streams)
        self.tolerance_s = tolerance_s
        self.queue_size = queue_size
        self.max_delay_s = max_delay_s
        self.stats = SyncStats(late=dict.fromkeys(views, 0))
        self._queues: dict[Key, list[tuple[float, int, Any]]] = {
            (view, stream): [] for view in views for stream in streams}
        self._order = itertools.count()
        self._last_emitted = float('-inf')
        self._newest_seen = float('-inf')
        self._dropped: list[DroppedSet] = []

    def add(self, view: str, stream: str, stamp_s: float, item: Any) -> Optional[SyncedSet]:
        """Queue one item; return the set it completes, or None."""
        key = (view, stream)
        if key not in self._queues:
            raise KeyError(f'unknown stream {key}; views are {list(self.views)}, '
                           f'streams are {list(self.streams)}')
        self.stats.received += 1
        if stamp_s <= self._last_emitted or stamp_s < self._timeout_limit():
            self.stats.late[view] += 1
            return None
        queue = self._queues[key]
        insort(queue, (stamp_s, next(self._order), item))
        if len(queue) > self.queue_size:
            del queue[0]
            self.stats.overflow += 1
        self._newest_seen = max(self._newest_seen, stamp_s)
        synced = self._complete_set_with(stamp_s)
        if synced is not None:
            self._last_emitted = synced.stamp_s
            self._give_up(lambda s: s <= synced.stamp_s, synced.stamp_s - self.tolerance_s,
                          'superseded')
            self.stats.emitted += 1
        else:
            limit = self._timeout_limit()
            self._give_up(lambda s: s < limit, limit, 'timeout')
        return synced

    def pop_dropped(self) -> list[DroppedSet]:
        """Return the sets given up since the last call, oldest first."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def _complete_set_with(self, stamp_s: float) -> Optional[SyncedSet]:
        """
        Find the newest complete set that can contain an item stamped ``stamp_s``.

        Sets are complete as soon as they form, so a new one must include the
        new item: its newest stamp lies in [stamp_s, stamp_s + tolerance].
        """
        candidates = sorted({s for queue in self._queues.values() for s, _, _ in queue
                             if stamp_s <= s <= stamp_s + self.tolerance_s}, reverse=True)
        for newest in candidates:
            chosen = {}
            for key, queue in self._queues.items():
                in_window = [e for e in queue if newest - self.tolerance_s <= e[0] <= newest]
                if not in_window:
                    break
                chosen[key] = in_window[-1]
            else:
                newest_key = max(chosen, key=lambda k: chosen[k][0])
                return SyncedSet(stamp_s=newest, newest=newest_key,
                                 items={k: e[2] for k, e in chosen.items()},
                                 stamps={k: e[0] for k, e in chosen.items()})
        return None

    def _timeout_limit(self) -> float:
        """Return the stamp below which partial sets are given up (-inf: never)."""
        if self.max_delay_s is None:
            return float('-inf')
        return self._newest_seen - self.max_delay_s

    def _give_up(self, is_old: Callable[[float], bool], window_start: float,
                 reason: str) -> None:
        """
        Remove old items; those stamped before ``window_start`` form dropped sets.

        Old items inside the window of a returned set are duplicates of
        streams in that set, not a separate set.
        """
        old: list[tuple[float, Key]] = []
        for key, queue in self._queues.items():
            old.extend((e[0], key) for e in queue if is_old(e[0]) and e[0] < window_start)
            queue[:] = [e for e in queue if not is_old(e[0])]
        for group in self._cluster(sorted(old)):
            self._dropped.append(DroppedSet(stamp_s=group[-1][0], missing=self._missing(group),
                                            reason=reason))
            self.stats.dropped_sets += 1

    def _cluster(self, stamped_keys: list[tuple[float, Key]]) -> list[list[tuple[float, Key]]]:
        """Split sorted (stamp, key) pairs into sets wherever a gap exceeds the tolerance."""
        groups: list[list[tuple[float, Key]]] = []
        for entry in stamped_keys:
            if groups and entry[0] - groups[-1][0][0] <= self.tolerance_s:
                groups[-1].append(entry)
            else:
                groups.append([entry])
        return groups

    def _missing(self, group: list[tuple[float, Key]]) -> dict[str, tuple[str, ...]]:
        """Return view -> streams that ``group`` has no item for."""
        present = {key for _, key in group}
        missing = {view: tuple(s for s in self.streams if (view, s) not in present)
                   for view in self.views}
        return {view: streams for view, streams in missing.items() if streams}
