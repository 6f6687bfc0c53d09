"""
Run the perception graph on a recorded bag; this file plays nothing itself.

In one terminal start the nodes (they follow /clock):

    ros2 launch visual_rl_stack replay.launch.py

In another play the bag, with ``ros2 bag play`` or, where rosbag2 is not
installed, with the stack's player (``vrl play``). A bag recorded from the
simulator holds the sim node's /clock, which matches its message stamps, so
play it as it is:

    ros2 bag play runs/demo/bag        # or: vrl play runs/demo/bag

A bag recorded on a real robot has no /clock; let the player publish one from
the recording times:

    ros2 bag play BAG --clock          # or: vrl play BAG --clock

``ros2 bag play --clock`` with a bag that already holds /clock makes two
clocks; ``vrl play --clock`` plays the recorded one then. To score the
policy, affordance and world model on bags, use ``vrl replay-eval``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from visual_rl_stack.ros.graph import graph


def generate_launch_description() -> LaunchDescription:
    """Declare use_sim_time and start every node of the 'replay' graph."""
    spec = graph('replay')
    arguments = [
        DeclareLaunchArgument('use_sim_time', default_value=str(spec.use_sim_time).lower(),
                              description='Follow the /clock the bag player publishes.'),
    ]
    nodes = [Node(**node.launch_kwargs(LaunchConfiguration('use_sim_time')))
             for node in spec.nodes]
    return LaunchDescription(arguments + nodes)
