"""Spinning ends quietly on Ctrl-C or shutdown, including the races after a Ctrl-C."""

import threading
import time

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.signals import SignalHandlerOptions
from visual_rl_stack.ros import shutdown
from visual_rl_stack.ros.shutdown import ending_on_shutdown, settle_after_interrupt


@pytest.fixture
def context():
    context = Context()
    rclpy.init(context=context, domain_id=97)
    yield context
    context.try_shutdown()


def rclpy_handles(monkeypatch, options: SignalHandlerOptions) -> list:
    """
    Pretend rclpy's signal handlers are ``options`` (they are process-wide).

    Returns the list the (recorded, not run) handler uninstalls are appended to.
    """
    uninstalls = []
    monkeypatch.setattr(shutdown, 'get_current_signal_handlers_options', lambda: options)
    monkeypatch.setattr(shutdown, 'uninstall_signal_handlers', lambda: uninstalls.append(1))
    return uninstalls


def test_interrupts_and_external_shutdown_end_quietly(context, monkeypatch):
    rclpy_handles(monkeypatch, SignalHandlerOptions.NO)
    for error in (KeyboardInterrupt(), ExternalShutdownException()):
        with ending_on_shutdown(context):
            raise error


def test_an_rcl_error_is_a_shutdown_only_once_the_context_is_gone(context):
    invalid = rclpy_implementation.RCLError('the given context is not valid')
    with pytest.raises(rclpy_implementation.RCLError):
        with ending_on_shutdown(context):
            raise invalid
    context.shutdown()
    with ending_on_shutdown(context):
        raise invalid
    with pytest.raises(ValueError):
        with ending_on_shutdown(context):
            raise ValueError('not a shutdown')


def test_after_ctrl_c_teardown_waits_for_rclpys_signal_thread_then_stops_it(
        context, monkeypatch):
    """The thread shuts the context down after the main thread's KeyboardInterrupt."""
    uninstalls = rclpy_handles(monkeypatch, SignalHandlerOptions.ALL)
    signal_thread = threading.Timer(0.3, context.shutdown)
    start = time.monotonic()
    signal_thread.start()
    with ending_on_shutdown(context):
        raise KeyboardInterrupt()
    assert time.monotonic() - start >= 0.25
    assert not context.ok() and uninstalls == [1]


def test_a_second_ctrl_c_while_settling_is_swallowed(context, monkeypatch):
    uninstalls = rclpy_handles(monkeypatch, SignalHandlerOptions.SIGINT)
    sleep, calls = time.sleep, []

    def interrupted_sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 2:
            raise KeyboardInterrupt()  # launch's own SIGINT after the terminal's
        sleep(seconds)

    monkeypatch.setattr(shutdown.time, 'sleep', interrupted_sleep)
    threading.Timer(0.2, context.shutdown).start()
    assert settle_after_interrupt(context)
    assert len(calls) > 2 and uninstalls == [1]


def test_the_wait_is_bounded_and_skipped_without_rclpys_handler(context, monkeypatch):
    uninstalls = rclpy_handles(monkeypatch, SignalHandlerOptions.ALL)
    start = time.monotonic()
    assert not settle_after_interrupt(context, timeout_s=0.2)
    assert 0.15 <= time.monotonic() - start < 5.0 and uninstalls == [1]
    rclpy_handles(monkeypatch, SignalHandlerOptions.SIGTERM)
    start = time.monotonic()
    assert not settle_after_interrupt(context, timeout_s=10.0)
    assert time.monotonic() - start < 5.0
    context.shutdown()
    assert settle_after_interrupt(context, timeout_s=10.0)
