"""The ways spinning a node ends on Ctrl-C or shutdown, handled in one place."""

from contextlib import contextmanager
from typing import Iterator

from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation


@contextmanager
def ending_on_shutdown(context: Context) -> Iterator[None]:
    """
    Return quietly when the spinning inside ends because of Ctrl-C or a shutdown.

    Besides KeyboardInterrupt and ExternalShutdownException, a Ctrl-C that
    shuts ``context`` down while the executor builds its next wait set
    surfaces as an RCLError ("the given context is not valid"): that one is
    a shutdown too once the context is gone; any other RCLError propagates.
    """
    try:
        yield
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except rclpy_implementation.RCLError:
        if context.ok():
            raise
