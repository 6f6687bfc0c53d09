"""
Measure how fast the sim node steps in lockstep mode, transport included.

The benchmark compares this with the gymnasium env's step rate: the node
should not cost much more than the simulator it wraps.
"""

import os
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
from visual_rl_stack.ros import topics

from .sim_node import SimNode

BENCH_DOMAIN_ID = 171


def lockstep_steps_per_second(task: str = 'lift', steps: int = 100,
                              cameras: tuple[str, ...] = ('front', 'side', 'wrist'),
                              width: int = 128, height: int = 128,
                              domain_id: int = BENCH_DOMAIN_ID) -> float:
    """
    Return control steps per second of a lockstep SimNode driven through ``/sim/step``.

    The node, a ``/sim/step`` client and subscribers to every colour image run
    in one process on a private context and DDS domain, so the rate includes
    message building and delivery but not process start-up or the first step.
    """
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        node = SimNode(context=context, parameter_overrides=[
            Parameter('mode', value='lockstep'), Parameter('task', value=task),
            Parameter('seed', value=0), Parameter('cameras', value=list(cameras) or ['']),
            Parameter('image_width', value=width), Parameter('image_height', value=height)])
        client_node = rclpy.create_node(f'sim_bench_{os.getpid()}', context=context)
        received = []
        for camera in cameras:
            client_node.create_subscription(Image, topics.color_topic(camera), received.append,
                                            topics.SENSOR_QOS)
        client = client_node.create_client(Trigger, topics.SIM_STEP)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(client_node)
        if not client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError('the /sim/step service did not come up')

        def step() -> None:
            # A plain spin_once loop: Jazzy's spin_until_future_complete adds milliseconds.
            future = client.call_async(Trigger.Request())
            deadline = time.monotonic() + 10.0
            while not future.done() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
            if not (future.done() and future.result().success):
                raise RuntimeError(f'/sim/step failed: {future.result()}')

        step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rate = steps / (time.perf_counter() - start)
        executor.shutdown()
        node.destroy_node()
        client_node.destroy_node()
        return rate
    finally:
        context.try_shutdown()
