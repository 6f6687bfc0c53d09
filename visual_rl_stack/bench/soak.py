"""
A soak run of the simulated graph started with ``ros2 launch``: memory, missed steps, errors.

The graph (``sim.launch.py``) runs in real time at the control rate with a
policy node beside it, active from the start, for ``minutes``; every
``sample_s`` the resident memory of every node process is sampled. A probe
on the same DDS domain counts control steps (``/clock``), the policy's
commands, and ``/diagnostics`` statuses at ERROR. With ``camera_hz`` a
640x480 camera publisher (:mod:`.camera_load`) runs beside the graph and the
probe subscribes to it, so its images really cross DDS.

Reported per run: every node's memory at 5 minutes and at the end and the
growth between them (the target: <= 5 %), control steps without a policy
command ("missed": the policy answers the newest observation, so a slow
inference skips steps), and the ERROR statuses by name.
"""

from collections import Counter
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from matplotlib.figure import Figure
import psutil
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from visual_rl_stack.evaluation.ros_eval import simulator_speed_limits
from visual_rl_stack.ros import topics
from visual_rl_stack.sim.config import SimConfig

from .camera_load import LOAD_TOPIC

#: Minutes after which memory must have settled (growth is measured from here).
SETTLE_MIN = 5.0
#: DDS domain of the soak graph (away from the tests' 1-100 and a robot's 0).
SOAK_DOMAIN = 160


def memory_growth(samples: list[tuple[float, float]], settle_min: float = SETTLE_MIN) -> dict:
    """
    Return a node's memory at ``settle_min`` and at the end of ``(minute, MiB)`` samples.

    ``growth`` is (end - settled) / settled; None when the run ended before
    ``settle_min`` (nothing settled to compare with).
    """
    settled = [mib for minute, mib in samples if minute >= settle_min]
    if not settled:
        return {'settled_mib': None, 'end_mib': samples[-1][1] if samples else None,
                'growth': None}
    return {'settled_mib': settled[0], 'end_mib': settled[-1],
            'growth': (settled[-1] - settled[0]) / settled[0]}


def missed_steps(steps: int, commands: int) -> int:
    """Return the control steps no policy command answered (never negative)."""
    return max(steps - commands, 0)


class SoakProbe:
    """Counts control steps, policy commands, ERROR diagnostics and load images on a domain."""

    def __init__(self, domain_id: int):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node('soak_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.steps = self.commands = self.load_images = 0
        self.errors: Counter = Counter()
        self.node.create_subscription(Clock, topics.CLOCK, self._on_clock, 10)
        self.node.create_subscription(TwistStamped, topics.ARM_DELTA_TWIST, self._on_command, 10)
        self.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics,
                                      50)
        self.node.create_subscription(Image, LOAD_TOPIC, self._on_load, topics.SENSOR_QOS)

    def _on_clock(self, _msg: Clock) -> None:
        self.steps += 1

    def _on_command(self, _msg: TwistStamped) -> None:
        self.commands += 1

    def _on_load(self, _msg: Image) -> None:
        self.load_images += 1

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.level == DiagnosticStatus.ERROR:
                self.errors[status.name] += 1

    def spin_for(self, seconds: float) -> None:
        """Process messages for ``seconds`` of wall time."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        """Destroy the probe and its context."""
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


def node_processes(roots: list[subprocess.Popen]) -> dict[str, psutil.Process]:
    """Return the processes under ``roots`` that run a node, by node name (``__node:=``)."""
    found = {}
    for root in roots:
        try:
            family = [psutil.Process(root.pid)] + psutil.Process(root.pid).children(True)
        except psutil.NoSuchProcess:
            continue
        for process in family:
            try:
                names = [a.split(':=', 1)[1] for a in process.cmdline()
                         if a.startswith('__node:=')]
            except psutil.NoSuchProcess:
                continue
            if names:
                found[names[0]] = process
    return found


def start_graph(task: str, policy: str, camera_hz: float, log: Path) -> list[subprocess.Popen]:
    """Start the sim graph with ``ros2 launch``, the active policy node, and the camera load."""
    ros2 = shutil.which('ros2')
    if ros2 is None:
        raise RuntimeError('the soak benchmark starts the graph with ros2 launch: install ROS '
                           "2's launch system (make setup does where the kit is present) or "
                           'source a ROS 2 install')
    env = dict(os.environ, ROS_DOMAIN_ID=str(SOAK_DOMAIN), PYTHONUNBUFFERED='1')
    out = log.open('a')
    # The safety filter's speed limits as the simulator's own (as `vrl eval --via-ros` sets
    # them), so it does not report every step the simulator would take anyway.
    limits = [a for name, value in simulator_speed_limits(SimConfig().control_hz).items()
              for a in ('-p', f'{name}:={value}')]
    commands = [[ros2, 'launch', 'visual_rl_stack', 'sim.launch.py', f'task:={task}'],
                [ros2, 'run', 'visual_rl_stack', 'policy_node', '--ros-args', '-r',
                 '__node:=policy_node', '-p', f'policy:={policy}', '-p', 'use_sim_time:=true',
                 '-p', 'active_on_start:=true', *limits]]
    if camera_hz > 0:
        commands.append([sys.executable, '-m', 'visual_rl_stack.bench.camera_load',
                         '--hz', str(camera_hz), '--ros-args', '-r', '__node:=camera_load'])
    return [subprocess.Popen(c, env=env, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True) for c in commands]


def stop_graph(processes: list[subprocess.Popen], timeout: float = 60.0) -> list[int]:
    """End every process group with SIGINT (Ctrl-C), killing what outlives ``timeout``."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            codes.append(process.wait())
    return codes


def soak(task: str, policy: str, minutes: float, camera_hz: float = 0.0,
         sample_s: float = 60.0, log: Optional[Path] = None, progress: bool = True) -> dict:
    """Run the graph for ``minutes`` and return the measurements (module doc)."""
    log = log or Path(f'runs/bench/soak_{task}_{camera_hz:g}hz.log')
    log.parent.mkdir(parents=True, exist_ok=True)
    processes = start_graph(task, policy, camera_hz, log)
    probe = SoakProbe(SOAK_DOMAIN)
    samples: dict[str, list[tuple[float, float]]] = {}
    started = time.monotonic()
    try:
        probe.spin_for(5.0)
        first = (probe.steps, probe.commands)
        while (elapsed := time.monotonic() - started) < minutes * 60:
            for name, process in node_processes(processes).items():
                try:
                    mib = process.memory_info().rss / 2 ** 20
                except psutil.NoSuchProcess:
                    continue
                samples.setdefault(name, []).append((elapsed / 60, mib))
            if progress:
                print(f'soak {task} ({camera_hz:g} Hz load): {elapsed / 60:.1f} / {minutes:g} '
                      f'min, {probe.steps} steps, {probe.commands} commands', flush=True)
            probe.spin_for(min(sample_s, minutes * 60 - elapsed))
        steps, commands = probe.steps - first[0], probe.commands - first[1]
        wall_s = time.monotonic() - started - 5.0
    finally:
        probe.close()
        exit_codes = stop_graph(processes)
    return {'task': task, 'policy': policy, 'minutes': minutes, 'camera_hz': camera_hz,
            'control_steps': steps, 'steps_per_s': steps / max(wall_s, 1e-9),
            'policy_commands': commands, 'missed_steps': missed_steps(steps, commands),
            'load_images_per_s': probe.load_images / max(wall_s, 1e-9),
            'diagnostic_errors': dict(probe.errors),
            'memory': {name: {**memory_growth(s), 'samples': s} for name, s in samples.items()},
            'exit_codes': exit_codes, 'log': str(log)}


def plot_memory(runs: list[dict], out: Path) -> None:
    """Draw every node's resident memory over time, one panel per run."""
    figure = Figure(figsize=(6 * len(runs), 4))
    names = sorted({name for run in runs for name in run['memory']})
    colours = {name: f'C{i % 10}' for i, name in enumerate(names)}  # one per node, every panel
    for index, run in enumerate(runs):
        axes = figure.add_subplot(1, len(runs), index + 1)
        for name, memory in sorted(run['memory'].items()):
            minutes, mib = zip(*memory['samples'])
            axes.plot(minutes, mib, label=name, color=colours[name])
        axes.axvline(SETTLE_MIN, color='grey', linestyle=':')
        axes.set_xlabel('minutes')
        axes.set_ylabel('resident memory (MiB)')
        axes.set_title(f'{run["task"]}, camera load {run["camera_hz"]:g} Hz')
        axes.legend(fontsize='small')
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
