"""ROS 2 plumbing: topics, conversions, parameters, the node graph, bringup, lockstep client."""
