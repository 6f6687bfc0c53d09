"""Shared pytest fixtures: a private ROS context with its own DDS domain per test, and more."""

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


@pytest.fixture(scope='module')
def lift_step():
    """Return the robot state and task state of a lift episode's first step."""
    from visual_rl_stack.sim.config import SimConfig
    from visual_rl_stack.sim.scene import TabletopSim
    sim = TabletopSim(SimConfig(task='lift', cameras=()))
    try:
        sim.reset(seed=0)
        return sim.robot_state(), sim.task_state()
    finally:
        sim.close()


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


def make_residual_run(bc_run, out, kind='residual', **residual_settings):
    """
    Turn a BC run into a residual run with an untrained (exactly zero) residual.

    The folder layout of ``vrl train-residual`` (``kind`` 'residual' for
    PPO's, 'resfit' for the off-policy learner's), without training: a quick
    way to test what opens residual runs.
    """
    import json
    import shutil

    from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import (
        DiffusionPolicy)
    from visual_rl_stack.residual_policy.resfit.agent import ResFiTAgent, resfit_config_for
    from visual_rl_stack.residual_policy.resip.agent import (
        ResidualAgent, residual_config_for)
    shutil.copytree(bc_run / 'checkpoint', out / 'checkpoint')
    config = json.loads((bc_run / 'config.json').read_text())
    config.update(kind=kind, base=str(bc_run), base_inference_steps=4)
    (out / 'config.json').write_text(json.dumps(config))
    policy = DiffusionPolicy.from_checkpoint(out / 'checkpoint')
    if kind == 'resfit':
        agent = ResFiTAgent(resfit_config_for(policy, **residual_settings))
    else:
        agent = ResidualAgent(residual_config_for(policy, **residual_settings))
    agent.save(out / 'residual')
    return out
