r"""
Start the stack on a real robot's cameras, one process per node.

Start the camera drivers first, named as in visual_rl_stack.ros.graph.REAL_CAMERA_DRIVERS,
e.g. for each camera X in front, side, wrist:

    ros2 launch realsense2_camera rs_launch.py camera_namespace:='' \\
        camera_name:=camera_X align_depth.enable:=true
    ros2 launch visual_rl_stack real.launch.py

The camera node's topics are remapped onto the driver's (graph.real_camera_remappings).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from visual_rl_stack.ros.graph import graph


def generate_launch_description() -> LaunchDescription:
    """Declare use_sim_time and start every node of the 'real' graph."""
    spec = graph('real')
    arguments = [
        DeclareLaunchArgument('use_sim_time', default_value=str(spec.use_sim_time).lower(),
                              description='Follow /clock instead of the wall clock.'),
    ]
    arguments += [DeclareLaunchArgument(node.switch, default_value='true',
                                        description=f'Start {node.name}.')
                  for node in spec.nodes if node.switch]
    nodes = [Node(**node.launch_kwargs(LaunchConfiguration('use_sim_time')),
                  condition=IfCondition(LaunchConfiguration(node.switch)) if node.switch
                  else None)
             for node in spec.nodes]
    return LaunchDescription(arguments + nodes)
