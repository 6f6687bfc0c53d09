"""Every node's ``main`` ends with exit 0, no traceback, on SIGINT (Ctrl-C) and SIGTERM (kill)."""

import os
import signal
import subprocess
import sys
import time

from conftest import next_domain_id, wait_until_on_graph
import pytest

#: node name -> (module run with ``python -m``, its ROS arguments: small and offline).
NODES = {
    'sim_node': ('visual_rl_stack.sim.sim_node',
                 ['-p', 'mode:=lockstep', '-p', 'task:=reach', '-p', 'cameras:=[front]']),
    'camera_node': ('visual_rl_stack.perception.camera_node', ['-p', 'cameras:=[front]']),
    'affordance_node': ('visual_rl_stack.vlm_affordance.affordance_node', []),
    'world_model_node': ('visual_rl_stack.world_model.world_model_node', []),
    'policy_node': ('visual_rl_stack.residual_policy.policy_node',
                    ['-p', 'policy:=bc_state_lift']),
}


def start(module: str, ros_args: list[str], domain_id: int) -> subprocess.Popen:
    """Start a node process as ``ros2 run`` would, on ``domain_id``."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED='1')
    return subprocess.Popen([sys.executable, '-m', module, '--ros-args', *ros_args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(NODES))
def test_node_exits_cleanly_on_sigint_and_sigterm(name: str):
    module, ros_args = NODES[name]
    runs = {sig: (start(module, ros_args, domain), domain)
            for sig, domain in ((signal.SIGINT, next_domain_id()),
                                (signal.SIGTERM, next_domain_id()))}
    try:
        for sig, (process, domain) in runs.items():
            up = wait_until_on_graph({name}, domain, process)
            if not up:
                process.kill()
            assert up, f'{name} did not come up:\n{process.communicate()[0]}'
            time.sleep(1.0)  # past start-up: spinning, timers and subscriptions live
            process.send_signal(sig)
            output, _ = process.communicate(timeout=60)
            assert process.returncode == 0, f'{name} on {sig.name}: exit ' \
                f'{process.returncode}\n{output}'
            assert 'Traceback' not in output, f'{name} on {sig.name}:\n{output}'
    finally:
        for process, _ in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
