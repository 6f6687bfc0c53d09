"""Shared pytest fixtures: a private ROS context with its own DDS domain per test."""

import itertools
import os
import random
import time
from typing import Callable, Iterator

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import Executor

_DOMAIN_IDS = itertools.count(random.Random(os.getpid()).randrange(1, 60))


def next_domain_id() -> int:
    """Return a domain id no other test in this run uses (1..100)."""
    return 1 + next(_DOMAIN_IDS) % 100


@pytest.fixture
def ros_context() -> Iterator[Context]:
    """Yield an initialised private context on a domain of its own; shut it down after."""
    context = Context()
    rclpy.init(context=context, domain_id=next_domain_id())
    try:
        yield context
    finally:
        context.try_shutdown()


def spin_until(executor: Executor, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


@pytest.fixture
def spin() -> Callable[..., bool]:
    """Give tests :func:`spin_until` without importing conftest."""
    return spin_until
