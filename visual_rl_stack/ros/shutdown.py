"""The ways spinning a node ends on Ctrl-C or shutdown, handled in one place."""

from contextlib import contextmanager
import signal
import threading
import time
from typing import Iterator, Optional

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.signals import (get_current_signal_handlers_options, SignalHandlerOptions,
                           uninstall_signal_handlers)

#: Longest wait (s) for rclpy's signal thread to finish shutting the contexts down.
SIGNAL_THREAD_TIMEOUT_S = 5.0


def init_process_context(args: Optional[list[str]] = None,
                         domain_id: Optional[int] = None) -> Context:
    """
    Initialise a private context that Ctrl-C and SIGTERM shut down: a process's own.

    rclpy installs its signal handlers only for the default context. With a
    private one, SIGTERM (``kill``, ``docker stop``, ``ros2 launch`` escalating)
    killed a recorder before it closed its bag, and a process started in the
    background (``&``), which inherits SIGINT ignored, never stopped on Ctrl-C.
    """
    context = Context()
    rclpy.init(args=args, context=context, domain_id=domain_id,
               signal_handler_options=SignalHandlerOptions.ALL)
    return context


@contextmanager
def ending_on_shutdown(context: Context) -> Iterator[None]:
    """
    Return quietly when the spinning inside ends because of Ctrl-C or a shutdown.

    Besides KeyboardInterrupt and ExternalShutdownException, a Ctrl-C that
    shuts ``context`` down while the executor builds its next wait set
    surfaces as an RCLError ("the given context is not valid"): that one is
    a shutdown too once the context is gone; any other RCLError propagates.
    After a KeyboardInterrupt it lets rclpy's signal thread finish
    (:func:`settle_after_interrupt`) so the caller can tear down safely.
    """
    try:
        yield
    except KeyboardInterrupt:
        settle_after_interrupt(context)
    except ExternalShutdownException:
        pass
    except rclpy_implementation.RCLError:
        if context.ok():
            raise


def settle_after_interrupt(context: Context,
                           timeout_s: float = SIGNAL_THREAD_TIMEOUT_S) -> bool:
    """
    After Ctrl-C, let rclpy's signal thread finish, then stop it; True once ``context`` is down.

    rclpy answers SIGINT twice: Python raises KeyboardInterrupt in the main
    thread, and a thread of rclpy's wakes the executors' guard conditions and
    then shuts every context down. On a busy machine the main thread got
    there first and destroyed its executor and nodes while that thread was
    still using them: both nodes of a launch test died with SIGSEGV on one
    SIGINT. So this waits until the thread has shut ``context`` down, then
    uninstalls rclpy's handlers, which joins the thread: a second Ctrl-C
    (a terminal's, then launch's own) can no longer start it again during
    the teardown, and one that lands here is swallowed.
    """
    handled = (SignalHandlerOptions.SIGINT, SignalHandlerOptions.ALL)
    if get_current_signal_handlers_options() not in handled:
        return not context.ok()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            while context.ok() and time.monotonic() < deadline:
                time.sleep(0.005)
            uninstall_signal_handlers()
            return not context.ok()
        except KeyboardInterrupt:
            continue


def ignore_interrupts() -> None:
    """
    Ignore Ctrl-C (SIGINT) from now on, in the main thread: a process that is closing.

    A terminal's Ctrl-C reaches every process ``ros2 launch`` started, and
    launch then sends each its own SIGINT: the second one used to land in
    ``destroy_node``, or after ``main`` returned in an exit handler, as a
    KeyboardInterrupt traceback. A node's ``main`` calls this before it
    closes, and again after shutting its context down (rclpy then restores
    the handlers it replaced).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
