"""
Compose a node graph in one process: ``vrl bringup sim`` without a ROS 2 install.

The nodes, parameter files and remappings come from :mod:`visual_rl_stack.ros.graph`,
the same definition the launch files use, so both layouts run the same graph.
"""

from concurrent.futures import ThreadPoolExecutor
import sys
import threading
import time
from types import TracebackType
from typing import Any, Callable, Optional, Sequence, Union

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from .graph import graph as find_graph, GraphSpec, NodeSpec
from .shutdown import ending_on_shutdown, ignore_interrupts, init_process_context

Overrides = dict[str, dict[str, Any]]


def shutdown_executor(executor: Executor) -> None:
    """
    Wait for callbacks still running on an executor's threads, then shut it down.

    Call it once spinning has stopped. Jazzy's ``Executor.shutdown`` does not
    wait for them, and a callback finishing after it (or after its node was
    destroyed) raises.
    """
    pool = getattr(executor, '_executor', None)
    if isinstance(pool, ThreadPoolExecutor):
        pool.shutdown(wait=True)
    executor.shutdown()


def run_node(factory: Callable[[], Node], args: Optional[list[str]] = None) -> int:
    """
    Run one node on a SingleThreadedExecutor until Ctrl-C: a node's ``main()``.

    The executor is made before the node announces itself, so an early Ctrl-C
    lands in the handled region, as does one while the node is being built
    (a model loading); invalid parameters (ValueError) print their message
    and return 1. From closing to the process's exit Ctrl-C is ignored: a
    process main's helper, not for a process that goes on afterwards.
    """
    rclpy.init(args=args)
    executor = SingleThreadedExecutor()
    node = None
    try:
        with ending_on_shutdown(executor.context):
            node = factory()
            executor.add_node(node)
            executor.spin()
    except ValueError as error:
        if node is not None:
            raise
        print(str(error), file=sys.stderr)
        return 1
    finally:
        ignore_interrupts()
        shutdown_executor(executor)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        ignore_interrupts()
    return 0


def run_node_until(factory: Callable[[Context], Node], spin: Callable[[Node, Context], None],
                   args: Optional[list[str]] = None) -> int:
    """
    Run one node that drives its own loop (``spin``) until it returns or Ctrl-C: a ``main()``.

    Invalid parameters (ValueError from ``factory``) print their message and
    return 2; the node is destroyed and the context shut down however it
    ends, and Ctrl-C is ignored from then on (as :func:`run_node`).
    """
    context = init_process_context(args)
    node = None
    try:
        with ending_on_shutdown(context):
            node = factory(context)
        if node is not None:
            spin(node, context)
    except ValueError as error:
        if node is not None:
            raise
        print(error, file=sys.stderr)
        return 2
    finally:
        ignore_interrupts()
        if node is not None:
            node.destroy_node()
        context.try_shutdown()
        ignore_interrupts()
    return 0


def create_node(spec: NodeSpec, params: dict[str, Any], context: Context) -> Node:
    """
    Instantiate a node class as the launch file would start it (name, remappings, params).

    Raises ValueError for a parameter the node does not declare, and
    ImportError naming the module when the node class is not available.
    """
    try:
        factory = spec.load_factory()
    except ImportError as error:
        raise ImportError(f'node {spec.name!r} needs {spec.factory}, which does not import: '
                          f'{error}') from error
    cli_args = ['--ros-args', '-r', f'__node:={spec.name}']
    for source, target in spec.remappings:
        cli_args += ['-r', f'{source}:={target}']
    node = factory(context=context, cli_args=cli_args,
                   parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    unknown = sorted(k for k in params if not node.has_parameter(k))
    if unknown:
        node.destroy_node()
        raise ValueError(f'{spec.name} has no parameters {unknown}')
    return node


class GraphRunner:
    """
    The nodes of one graph on one executor, spun here or in a background thread.

    A SingleThreadedExecutor, measured against rclpy's MultiThreadedExecutor
    here: the latter woke up late for ready subscriptions (camera to tiled image
    ~90 ms instead of ~5 ms) and could run a ``/sim/step`` request before the
    command that preceded it; the single-threaded one handles ready
    subscriptions before services. Work that is slow (the point cloud) runs on
    a thread of its own node.

    Use as a context manager (``with GraphRunner('sim') as runner:``) to spin in
    the background, or call :meth:`spin` to spin in the foreground.
    """

    def __init__(self, graph: Union[str, GraphSpec] = 'sim',
                 overrides: Optional[Overrides] = None, context: Optional[Context] = None,
                 without: Sequence[str] = ()):
        """
        Check the graph (a name, or a spec composed by the caller) and overrides.

        Nothing starts before :meth:`start`. ``without`` names nodes with a
        launch switch (:attr:`NodeSpec.switch`) to leave out.
        """
        self.graph = graph if isinstance(graph, GraphSpec) else find_graph(graph)
        self.overrides = overrides or {}
        names = [spec.name for spec in self.graph.nodes]
        unknown = sorted(set(self.overrides) - set(names))
        if unknown:
            raise ValueError(f'overrides for {unknown}, which are not in graph '
                             f'{self.graph.name!r} (nodes: {names})')
        optional = [spec.name for spec in self.graph.nodes if spec.switch]
        fixed = sorted(set(without) - set(optional))
        if fixed:
            raise ValueError(f'cannot leave out {fixed}; graph {self.graph.name!r} can run '
                             f'without {optional or "none of its nodes"}')
        self.without = frozenset(without)
        self.context = context
        self._own_context = context is None
        self.nodes: dict[str, Node] = {}
        self.executor: Optional[SingleThreadedExecutor] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def start(self, background: bool = True) -> 'GraphRunner':
        """
        Create every node (and a context if none was given); spin them in a thread.

        On failure the nodes created so far are destroyed before the error propagates.
        """
        if self._own_context:
            self.context = init_process_context()
        self.executor = SingleThreadedExecutor(context=self.context)
        try:
            for spec in self.graph.nodes:
                if spec.name in self.without:
                    continue
                params = {**spec.params(), **spec.overrides(self.graph.use_sim_time,
                                                            self.overrides.get(spec.name))}
                self.nodes[spec.name] = create_node(spec, params, self.context)
                self.executor.add_node(self.nodes[spec.name])
        except BaseException:
            self.stop()
            raise
        if background:
            self._thread = threading.Thread(target=self._spin_until, args=(None,),
                                            name=f'graph-{self.graph.name}', daemon=True)
            self._thread.start()
        return self

    def spin(self, duration: Optional[float] = None) -> None:
        """Spin in this thread until ``duration`` seconds pass, Ctrl-C or shutdown."""
        with ending_on_shutdown(self.context):
            self._spin_until(None if duration is None else time.monotonic() + duration)

    def _spin_until(self, deadline: Optional[float]) -> None:
        """Spin the executor until the deadline, :meth:`stop` or context shutdown."""
        while (not self._stop.is_set() and self.context.ok()
               and (deadline is None or time.monotonic() < deadline)):
            self.executor.spin_once(timeout_sec=0.05)

    def stop(self) -> None:
        """Stop spinning, destroy the nodes, shut down the context if this runner made it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        if self.executor is not None:
            shutdown_executor(self.executor)
            self.executor = None
        for node in self.nodes.values():
            node.destroy_node()
        self.nodes = {}
        if self._own_context and self.context is not None:
            self.context.try_shutdown()

    def __enter__(self) -> 'GraphRunner':
        """Start the graph in a background thread."""
        return self.start()

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        """Stop the graph."""
        self.stop()


def bringup(graph: str = 'sim', overrides: Optional[Overrides] = None,
            duration: Optional[float] = None, context: Optional[Context] = None,
            without: Sequence[str] = ()) -> None:
    """Run a graph (less ``without``) in this process until Ctrl-C or ``duration`` seconds."""
    runner = GraphRunner(graph, overrides, context, without)
    try:
        runner.start(background=False)
        runner.spin(duration)
    finally:
        runner.stop()
