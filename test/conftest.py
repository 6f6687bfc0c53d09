"""Shared pytest fixtures: a private ROS context with its own DDS domain per test, and more."""

import itertools
import os
import random
import subprocess
import time
from typing import Callable, Iterator

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import Executor
from rclpy.node import Node

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


def wait_until_on_graph(names: set[str], domain_id: int, process: subprocess.Popen,
                        timeout: float = 90.0) -> bool:
    """Return whether every node in ``names`` appears on ``domain_id`` before ``process`` ends."""
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    probe = Node('graph_probe', context=context)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if names <= set(probe.get_node_names()):
                return True
            time.sleep(0.2)
        return False
    finally:
        probe.destroy_node()
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


#: A tiny diffusion BC policy: trains in seconds, for tests of what runs policies.
TINY_BC = {'down_dims': (16, 32, 64), 'horizon': 8, 'n_action_steps': 4}


def tiny_lift_bc(root, episodes: int = 1, steps: int = 5, batch_size: int = 16):
    """Record ``episodes`` lift demonstrations in ROOT/data; train ROOT/bc (state) on them."""
    from visual_rl_stack.data.collect import collect
    from visual_rl_stack.residual_policy.diffusion_bc.training.config import BCTrainSettings
    from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import train_bc
    data = collect('lift', episodes, root / 'data', views=('front',), width=32, height=32)
    train_bc(BCTrainSettings(task='lift', data=str(data), steps=steps, batch_size=batch_size,
                             device='cpu'), root / 'bc', config_overrides=TINY_BC, progress=False)
    return root / 'bc'


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
