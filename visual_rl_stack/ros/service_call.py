"""Call one service of a running graph from a short-lived process (``vrl call``)."""

import time
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def call_services(service_type: Any, name: str, requests: list[Any],
                  timeout: float = 10.0) -> list[Any]:
    """
    Call service ``name`` once per request, in order; return the responses.

    The process's own context follows ``ROS_DOMAIN_ID`` as ``ros2 service
    call`` does. Raises TimeoutError naming the service when it is not
    offered or does not answer within ``timeout`` seconds.
    """
    context = Context()
    rclpy.init(context=context)
    node = Node('vrl_call', context=context)
    client = node.create_client(service_type, name)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f'no {name} service within {timeout:g} s: is the graph '
                               'running on this ROS_DOMAIN_ID?')
        responses = []
        for request in requests:
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
            if not future.done():
                raise TimeoutError(f'{name} did not answer within {timeout:g} s')
            responses.append(future.result())
        return responses
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
