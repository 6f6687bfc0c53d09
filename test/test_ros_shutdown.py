"""Spinning ends quietly on Ctrl-C or shutdown, including the wait-set race after a Ctrl-C."""

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from visual_rl_stack.ros.shutdown import ending_on_shutdown


@pytest.fixture
def context():
    context = Context()
    rclpy.init(context=context, domain_id=97)
    yield context
    context.try_shutdown()


def test_interrupts_and_external_shutdown_end_quietly(context):
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
