"""
Start the simulated stack, one process per node, as defined in visual_rl_stack.ros.graph.

    ros2 launch visual_rl_stack sim.launch.py task:=push mode:=lockstep affordance:=false

The sim node owns /clock; every other node runs with use_sim_time; affordance:=false
leaves the affordance node (KAGI keypoints and dense reward) out. The same
graph runs in one process with `vrl bringup sim`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from visual_rl_stack.ros.graph import graph


def generate_launch_description() -> LaunchDescription:
    """Declare task, mode and use_sim_time and start every node of the 'sim' graph."""
    spec = graph('sim')
    defaults = spec.node('sim_node').params()
    arguments = [
        DeclareLaunchArgument('task', default_value=str(defaults['task']),
                              description='Task the simulator builds.'),
        DeclareLaunchArgument('mode', default_value=str(defaults['mode']),
                              description='realtime (timer) or lockstep (/sim/step).'),
        DeclareLaunchArgument('use_sim_time', default_value=str(spec.use_sim_time).lower(),
                              description='Nodes other than sim_node follow /clock.'),
    ]
    overrides = {'sim_node': {'task': LaunchConfiguration('task'),
                              'mode': LaunchConfiguration('mode')}}
    arguments += [DeclareLaunchArgument(node.switch, default_value='true',
                                        description=f'Start {node.name}.')
                  for node in spec.nodes if node.switch]
    nodes = [Node(**node.launch_kwargs(LaunchConfiguration('use_sim_time'),
                                       overrides.get(node.name)),
                  condition=IfCondition(LaunchConfiguration(node.switch)) if node.switch
                  else None)
             for node in spec.nodes]
    return LaunchDescription(arguments + nodes)
