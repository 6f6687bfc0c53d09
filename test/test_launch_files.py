"""
The launch files started by ROS 2's launch system: ``launch_tests/*.py``, each by ``launch_test``.

``launch_test`` (launch_testing's runner, as ament's ``add_launch_test``
uses) starts the launch file, runs the file's tests against the live graph,
ends the graph with SIGINT as Ctrl-C does and runs the post-shutdown checks.
launch_testing's pytest plugin is disabled (setup.cfg): Jazzy's declares
hooks pytest 9 no longer accepts, so each file runs in its own process.
"""

import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys

from conftest import wait_until_on_graph
import pytest

LAUNCH_TESTS = Path(__file__).resolve().parent / 'launch_tests'
#: Seconds one launch test may take: start-up on a busy machine, the checks, the shutdown.
TIMEOUT_S = 400


def launch_system_missing() -> str:
    """Return why the launch tests cannot run here, or '' when they can."""
    try:
        import launch_testing  # noqa: F401
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return ('the ROS 2 launch system is not installed: make test installs it from '
                '../shared/ros2-launch into .venv, or source a ROS 2 install')
    try:
        get_package_share_directory('visual_rl_stack')
    except LookupError:
        return 'visual_rl_stack is not installed: run the tests with colcon test (make test)'
    return ''


@pytest.mark.slow
@pytest.mark.parametrize('script', sorted(p.name for p in LAUNCH_TESTS.glob('*.py')))
def test_launch_file(script: str, tmp_path: Path):
    missing = launch_system_missing()
    if missing:
        pytest.skip(missing)
    here = str(Path(__file__).resolve().parent)
    # PYTHONFAULTHANDLER: a node that crashes prints every thread's stack.
    env = dict(os.environ, PYTHONFAULTHANDLER='1', PYTHONPATH=os.pathsep.join(
        [here, *filter(None, [os.environ.get('PYTHONPATH')])]))
    result = subprocess.run(
        [sys.executable, '-m', 'launch_testing.launch_test', str(LAUNCH_TESTS / script),
         '--junit-xml', str(tmp_path / 'result.xml')],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stdout[-20000:]


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_ends_ros2_launch_cleanly():
    """A terminal's Ctrl-C reaches launch and every node at once; launch then adds its own."""
    missing = launch_system_missing() or ('' if shutil.which('ros2') else 'no ros2 command')
    if missing:
        pytest.skip(missing)
    env = dict(os.environ, ROS_DOMAIN_ID='155', PYTHONUNBUFFERED='1', PYTHONFAULTHANDLER='1')
    process = subprocess.Popen(
        ['ros2', 'launch', 'visual_rl_stack', 'sim.launch.py', 'task:=reach'], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        nodes = {'sim_node', 'camera_node', 'affordance_node', 'world_model_node'}
        up = wait_until_on_graph(nodes, 155, process)
        os.killpg(process.pid, signal.SIGINT)  # the whole foreground group, as a terminal does
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert up, output
    assert process.returncode == 0, output
    assert 'Traceback' not in output and 'process has died' not in output, output
