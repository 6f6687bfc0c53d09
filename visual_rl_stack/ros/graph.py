"""
The node graphs of the stack, defined once for launch files and in-process bringup.

``launch/*.launch.py`` turn these specs into separate processes on a ROS 2
install; :mod:`visual_rl_stack.ros.bringup` composes the same nodes in one process.
Both read the same YAML parameter files from ``config/``.
"""

from dataclasses import dataclass
import importlib
from pathlib import Path
from typing import Any, Optional

from visual_rl_stack.core.config_dicts import flatten_mapping
from visual_rl_stack.core.package_files import PACKAGE, share_folder, source_folder
import yaml

from . import topics

CAMERAS = ('front', 'side', 'wrist')
#: Cameras of the real graph: fixed ones, whose extrinsics are static parameters.
REAL_CAMERAS = ('front', 'side')

#: Real camera drivers: our camera name -> the driver's camera name. A RealSense
#: started with ``camera_namespace:=''`` and ``camera_name:=camera_front``
#: publishes ``/camera_front/color/image_raw``, ``/camera_front/color/camera_info``
#: and, with ``align_depth.enable:=true``, ``/camera_front/aligned_depth_to_color/image_raw``.
REAL_CAMERA_DRIVERS = {camera: f'camera_{camera}' for camera in CAMERAS}


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph: what to run, under which name, with which parameters."""

    executable: str
    name: str
    param_file: str
    factory: str
    remappings: tuple[tuple[str, str], ...] = ()
    owns_clock: bool = False
    package: str = PACKAGE
    #: Name of the boolean launch argument that turns this node off ('' = always on).
    switch: str = ''

    def load_factory(self) -> type:
        """Import the node class (``module:Class``) lazily, so this module imports without it."""
        module, _, attr = self.factory.partition(':')
        return getattr(importlib.import_module(module), attr)

    def param_path(self) -> Path:
        """Return the path of this node's YAML parameter file."""
        return config_path(self.param_file)

    def params(self) -> dict[str, Any]:
        """Return this node's ``ros__parameters`` from its YAML file."""
        return load_node_params(self.param_path(), self.name)

    def overrides(self, use_sim_time: Any, overrides: Optional[dict[str, Any]] = None
                  ) -> dict[str, Any]:
        """
        Return what goes on top of the YAML file: ``use_sim_time``, then ``overrides``.

        The clock owner never follows ``/clock``; every other node follows the graph.
        """
        return {**({} if self.owns_clock else {'use_sim_time': use_sim_time}),
                **(overrides or {})}

    def launch_kwargs(self, use_sim_time: Any, overrides: Optional[dict[str, Any]] = None
                      ) -> dict[str, Any]:
        """Return the arguments of ``launch_ros.actions.Node`` that start this node."""
        return {'package': self.package, 'executable': self.executable, 'name': self.name,
                'parameters': [str(self.param_path()), self.overrides(use_sim_time, overrides)],
                'remappings': list(self.remappings), 'output': 'screen'}


@dataclass(frozen=True)
class GraphSpec:
    """A named graph: its nodes and whether they follow ``/clock``."""

    name: str
    nodes: tuple[NodeSpec, ...]
    use_sim_time: bool
    description: str

    def node(self, name: str) -> NodeSpec:
        """Return the spec of the node called ``name``."""
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(f'graph {self.name!r} has no node {name!r}; '
                       f'nodes: {[s.name for s in self.nodes]}')


def real_camera_remappings(cameras: tuple[str, ...] = CAMERAS) -> tuple[tuple[str, str], ...]:
    """Map the simulator's camera topics onto real RealSense driver topics."""
    pairs = []
    for camera in cameras:
        driver = REAL_CAMERA_DRIVERS[camera]
        pairs += [
            (topics.color_topic(camera), f'/{driver}/color/image_raw'),
            (topics.camera_info_topic(camera), f'/{driver}/color/camera_info'),
            (topics.depth_topic(camera), f'/{driver}/aligned_depth_to_color/image_raw'),
        ]
    return tuple(pairs)


SIM_NODE = NodeSpec(executable='sim_node', name='sim_node', param_file='sim_node.yaml',
                    factory=f'{PACKAGE}.sim.sim_node:SimNode', owns_clock=True)
#: Tiled views and fused clouds; ``camera:=false`` (launch) or ``--without camera_node``
#: leaves it out (a state policy's run renders no camera for it).
CAMERA_NODE = NodeSpec(executable='camera_node', name='camera_node',
                       param_file='sim_graph.yaml',
                       factory=f'{PACKAGE}.perception.camera_node:CameraNode', switch='camera')
#: KAGI keypoints and dense reward; ``affordance:=false`` (launch) or ``--without
#: affordance_node`` (``vrl bringup``) leaves it out.
AFFORDANCE_NODE = NodeSpec(executable='affordance_node', name='affordance_node',
                           param_file='sim_graph.yaml',
                           factory=f'{PACKAGE}.vlm_affordance.affordance_node:AffordanceNode',
                           switch='affordance')
#: Stage, progress, predicted reward and keyframes (RoboHorizon); ``world_model:=false``
#: (launch) or ``--without world_model_node`` (``vrl bringup``) leaves it out.
WORLD_MODEL_NODE = NodeSpec(executable='world_model_node', name='world_model_node',
                            param_file='sim_graph.yaml',
                            factory=f'{PACKAGE}.world_model.world_model_node:WorldModelNode',
                            switch='world_model')
#: The policy node, started beside a graph (``vrl eval --via-ros``, ``ros2 run``), not in one.
POLICY_NODE = NodeSpec(executable='policy_node', name='policy_node',
                       param_file='policy_node.yaml',
                       factory=f'{PACKAGE}.residual_policy.policy_node:PolicyNode')

GRAPHS = {
    'sim': GraphSpec('sim', (SIM_NODE, CAMERA_NODE, AFFORDANCE_NODE, WORLD_MODEL_NODE),
                     use_sim_time=True,
                     description='PyBullet simulator publishing /clock, plus the camera, '
                                 'affordance and world-model nodes'),
    'real': GraphSpec(
        'real', tuple(NodeSpec(**{**spec.__dict__, 'param_file': 'real_graph.yaml',
                                  'remappings': real_camera_remappings(REAL_CAMERAS)})
                      for spec in (CAMERA_NODE, AFFORDANCE_NODE, WORLD_MODEL_NODE)),
        use_sim_time=False,
        description='camera, affordance and world-model nodes on real RealSense driver topics '
                    '(start the drivers yourself)'),
    'replay': GraphSpec('replay', (CAMERA_NODE,), use_sim_time=True,
                        description='camera node on a bag played with `ros2 bag play --clock`'),
}


def graph(name: str) -> GraphSpec:
    """Return the graph called ``name`` or raise ValueError naming the known ones."""
    if name not in GRAPHS:
        raise ValueError(f'unknown graph {name!r}; known graphs: {", ".join(GRAPHS)}')
    return GRAPHS[name]


def config_path(filename: str) -> Path:
    """
    Find a file of ``config/``: installed share directory first, then the source tree.

    Raises FileNotFoundError listing where it looked.
    """
    places = [p for p in (share_folder('config'), source_folder('config')) if p is not None]
    for place in places:
        if (place / filename).is_file():
            return place / filename
    raise FileNotFoundError(f'config file {filename!r} not found in: '
                            + ', '.join(map(str, places)))


def load_node_params(path: Path, node_name: str) -> dict[str, Any]:
    """
    Read ``node_name: ros__parameters:`` from a ROS 2 parameter YAML file.

    Keys may be written as ``node_name`` or ``/node_name``; ``/**`` applies to
    every node and is overridden by the node's own section. Nested mappings
    become dotted names (``extrinsics: {front: ...}`` -> ``extrinsics.front``), as in rcl.
    """
    with open(path, encoding='utf-8') as stream:
        document = yaml.safe_load(stream) or {}
    if not isinstance(document, dict):
        raise ValueError(f'{path}: expected a mapping of node names')
    params: dict[str, Any] = {}
    for key in ('/**', node_name, f'/{node_name}'):
        section = document.get(key) or {}
        if not isinstance(section, dict) or not isinstance(
                section.get('ros__parameters', {}), dict):
            raise ValueError(f'{path}: section {key!r} must hold a ros__parameters mapping')
        params.update(flatten_mapping(section.get('ros__parameters') or {}))
    return params
