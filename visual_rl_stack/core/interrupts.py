"""
A stop request other than Ctrl-C ends a training run the way Ctrl-C does.

Trainers save their state and write their summary when ``KeyboardInterrupt``
reaches them. ``timeout``, job schedulers and ``docker stop`` send SIGTERM,
which by default kills the process on the spot (the summary is not written
and the worker environments print broken-pipe tracebacks); and a run started
in the background of a non-interactive shell inherits an ignored SIGINT, so
``kill -INT`` does nothing. Between :meth:`StopAsInterrupt.install` and
:meth:`~StopAsInterrupt.restore`, both raise ``KeyboardInterrupt`` in the
main thread instead.
"""

import signal
import threading
from types import FrameType
from typing import Any, Optional


def _raise_interrupt(signum: int, frame: Optional[FrameType]) -> None:
    """Turn the signal into the exception Ctrl-C raises."""
    raise KeyboardInterrupt(f'stopped by signal {signal.Signals(signum).name}')


class StopAsInterrupt:
    """Installs the handlers (main thread only: elsewhere Python cannot) and restores them."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Make SIGTERM, and an ignored SIGINT, raise ``KeyboardInterrupt``."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT,
                                                          signal.default_int_handler)

    def restore(self) -> None:
        """Put back the handlers found by :meth:`install` (again: nothing to do)."""
        while self._previous:
            signum, handler = self._previous.popitem()
            signal.signal(signum, handler)
