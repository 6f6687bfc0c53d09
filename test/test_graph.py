"""The graph definition: well-formed specs, parameter files the nodes accept, launch files."""

import importlib.util
from pathlib import Path

import pytest
from rclpy.context import Context
from visual_rl_stack.ros import graph as graphs
from visual_rl_stack.ros.bringup import create_node

LAUNCH_DIR = Path(__file__).resolve().parent.parent / 'launch'
NODES = sorted({(g.name, spec.name) for g in graphs.GRAPHS.values() for spec in g.nodes})


def test_every_graph_is_well_formed():
    for spec in graphs.GRAPHS.values():
        names = [node.name for node in spec.nodes]
        assert names and len(set(names)) == len(names)
        assert sum(node.owns_clock for node in spec.nodes) <= 1
        for node in spec.nodes:
            assert node.package == 'visual_rl_stack'
            assert node.param_path().is_file()
            assert ':' in node.factory
    assert [n.name for n in graphs.graph('sim').nodes] == [
        'sim_node', 'camera_node', 'affordance_node', 'world_model_node']
    assert [n.name for n in graphs.graph('real').nodes] == ['camera_node', 'affordance_node',
                                                            'world_model_node']
    assert [n.name for g in graphs.GRAPHS.values() for n in g.nodes if n.switch] == [
        'camera_node', 'affordance_node', 'world_model_node'] * 2 + ['camera_node']
    with pytest.raises(ValueError, match='known graphs: sim, real, replay'):
        graphs.graph('moon')


def test_real_graph_reads_driver_topics_and_wall_time():
    real = graphs.graph('real')
    assert not real.use_sim_time and 'sim_node' not in [n.name for n in real.nodes]
    remaps = dict(real.node('camera_node').remappings)
    assert remaps['/front/color/image_raw'] == '/camera_front/color/image_raw'
    assert remaps['/side/color/camera_info'] == '/camera_side/color/camera_info'
    assert remaps['/front/depth/image_raw'] == '/camera_front/aligned_depth_to_color/image_raw'


def test_launch_arguments_follow_the_clock_owner():
    sim = graphs.graph('sim')
    sim_node = sim.node('sim_node').launch_kwargs('true', {'task': 'push'})
    assert sim_node['parameters'][1] == {'task': 'push'}
    assert sim_node['parameters'][0].endswith('sim_node.yaml')
    camera = sim.node('camera_node').launch_kwargs('true')
    assert camera['parameters'][1] == {'use_sim_time': 'true'}
    assert camera['executable'] == 'camera_node'


def test_parameter_files_are_parsed_like_rcl(tmp_path: Path):
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters: {a: 1, b: 2}\n'
                    '/n:\n  ros__parameters: {b: 3, ext: {front: [1.0, 2.0]}}\n')
    assert graphs.load_node_params(path, 'n') == {'a': 1, 'b': 3, 'ext.front': [1.0, 2.0]}
    assert graphs.load_node_params(path, 'other') == {'a': 1, 'b': 2}
    with pytest.raises(FileNotFoundError, match='nothing.yaml'):
        graphs.config_path('nothing.yaml')


@pytest.mark.parametrize('graph_name, node_name', NODES)
def test_nodes_come_up_with_their_yaml_parameters(ros_context: Context, graph_name: str,
                                                  node_name: str):
    spec = graphs.graph(graph_name)
    node_spec = spec.node(node_name)
    params = {**node_spec.params(), **node_spec.overrides(spec.use_sim_time)}
    node = create_node(node_spec, params, ros_context)
    try:
        assert node.get_name() == node_name
        for name, value in params.items():
            assert node.get_parameter(name).value == pytest.approx(value), name
    finally:
        node.destroy_node()


@pytest.mark.parametrize('launch_file', ['sim.launch.py', 'real.launch.py', 'replay.launch.py'])
def test_launch_files_describe_every_node(launch_file: str):
    pytest.importorskip('launch_ros', reason='launch_ros is not installed (no ROS 2 install)')
    from launch_ros.actions import Node
    module_spec = importlib.util.spec_from_file_location('launch_under_test',
                                                         LAUNCH_DIR / launch_file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    description = module.generate_launch_description()
    nodes = [e for e in description.entities if isinstance(e, Node)]
    graph_name = launch_file.split('.')[0]
    assert len(nodes) == len(graphs.graph(graph_name).nodes)
