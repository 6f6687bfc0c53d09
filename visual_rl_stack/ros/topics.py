"""
Default topic and service names and their QoS, shared by every node.

``docs/interfaces.md`` documents each one; nodes take these as defaults and
users remap them (e.g. to a real camera driver's topics).
"""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)

WORLD_FRAME = 'world'

CLOCK = '/clock'
JOINT_STATES = '/joint_states'
EE_POSE = '/ee_pose'
TASK_INSTRUCTION = '/task/instruction'
TASK_SUCCESS = '/task/success'
TASK_REWARD = '/task/reward'
TASK_STATE = '/task/state'
ARM_TARGET_POSE = '/arm/target_pose'
ARM_DELTA_TWIST = '/arm/delta_twist'
GRIPPER_COMMAND = '/gripper/command'
SIM_RESET = '/sim/reset'
SIM_STEP = '/sim/step'
MULTIVIEW_IMAGE = '/perception/multiview/image'
POINTS = '/perception/points'
DIAGNOSTICS = '/diagnostics'
AFFORDANCE_KEYPOINTS = '/affordance/keypoints'
AFFORDANCE_MARKERS = '/affordance/markers'
AFFORDANCE_QUERY = '/affordance/query'
DENSE_REWARD = '/reward/dense'
WORLD_MODEL_STAGE = '/world_model/stage'
WORLD_MODEL_PROGRESS = '/world_model/progress'
WORLD_MODEL_REWARD = '/world_model/reward'
WORLD_MODEL_KEYFRAME = '/world_model/keyframe'


def color_topic(camera: str) -> str:
    """RealSense-style colour image topic of a camera."""
    return f'/{camera}/color/image_raw'


def camera_info_topic(camera: str) -> str:
    """Colour camera intrinsics topic (depth is aligned to colour)."""
    return f'/{camera}/color/camera_info'


def depth_topic(camera: str) -> str:
    """Aligned metric depth (32FC1, metres) topic of a camera."""
    return f'/{camera}/depth/image_raw'


def camera_pose_topic(camera: str) -> str:
    """Pose of a camera's optical frame in the world frame, stamped like its images."""
    return f'/{camera}/pose'


def shadow_topic(command_topic: str) -> str:
    """
    Topic a policy in shadow mode publishes a command on instead of ``command_topic``.

    ``vrl replay-eval`` remaps the policy node's outputs here: it computes
    commands on a replayed episode while the bag, not the policy, drives the scene.
    """
    return f'/shadow{command_topic}'


def expert_label_topic(command_topic: str) -> str:
    """
    Topic of a demonstrator's noise-free command recorded beside the executed one.

    With injected noise (DART), the bag's command topics carry what was
    executed and ``/expert/<command topic>`` what the expert meant; training
    uses the latter as the label.
    """
    return f'/expert{command_topic}'


#: Camera streams: best effort, keep last 5 (a reliable subscriber would not match).
SENSOR_QOS = qos_profile_sensor_data
#: Robot state and commands: reliable, keep last 10.
RELIABLE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          history=HistoryPolicy.KEEP_LAST)
#: Latched task description: late joiners still get the current instruction.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         history=HistoryPolicy.KEEP_LAST)
