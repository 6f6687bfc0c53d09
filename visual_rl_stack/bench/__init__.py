"""Benchmarks (``vrl bench``): simulator, ROS, perception, policy and RL throughput."""
