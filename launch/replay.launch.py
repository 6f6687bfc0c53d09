"""
Run the perception graph on a recorded bag; this file plays nothing itself.

In one terminal start the nodes (they follow /clock):

    ros2 launch visual_rl_stack replay.launch.py

In another play the bag. A bag recorded from the simulator holds the sim node's
/clock, which matches its message stamps, so play it as it is:

    ros2 bag play runs/demo/bag

A bag recorded on a real robot has no /clock; let the player publish one from
the recording times:

    ros2 bag play BAG --clock

Do not combine --clock with a bag that already holds /clock (two clocks).
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
