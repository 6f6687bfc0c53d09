"""
The ROS messages of one simulator step and of one action, built in one place.

The sim node publishes these, ``vrl collect`` writes them straight into bags
and ROS-side controllers send the command messages, so a bag recorded from
the live graph and one collected in-process hold the same bytes.
"""

from typing import Any, Iterator

from builtin_interfaces.msg import Time
from geometry_msgs.msg import TwistStamped
import numpy as np
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool, Float32, Float64
from visual_rl_stack.sim.cameras import CameraFrame
from visual_rl_stack.sim.robot import (MAX_GRIPPER_WIDTH, quat_from_euler, quat_from_rotvec,
                                       quat_to_euler, quat_to_rotvec)
from visual_rl_stack.sim.scene import TabletopSim

from . import topics
from .msg_conversions import (array_to_image, make_camera_info, make_joint_state,
                              make_labelled_array, make_pose_stamped, matrix_to_quaternion)

Messages = Iterator[tuple[str, Any]]


def camera_messages(frame: CameraFrame, stamp: Time) -> Messages:
    """Yield (topic, message) for one rendered view: colour, intrinsics, depth, pose."""
    yield topics.color_topic(frame.name), array_to_image(frame.rgb, 'rgb8', stamp,
                                                         frame.frame_id)
    yield topics.camera_info_topic(frame.name), make_camera_info(
        frame.K, frame.width, frame.height, stamp, frame.frame_id)
    yield topics.depth_topic(frame.name), array_to_image(frame.depth, '32FC1', stamp,
                                                         frame.frame_id)
    T = frame.T_world_camera
    yield topics.camera_pose_topic(frame.name), make_pose_stamped(
        T[:3, 3], matrix_to_quaternion(T[:3, :3]), stamp, topics.WORLD_FRAME)


def observation_messages(sim: TabletopSim, stamp: Time) -> Messages:
    """Yield (topic, message) for everything the sim graph publishes at one step."""
    yield topics.CLOCK, Clock(clock=stamp)
    for frame in sim.render(sim.scheduler.due(sim.sim_time)).values():
        yield from camera_messages(frame, stamp)
    state = sim.robot_state()
    yield topics.JOINT_STATES, make_joint_state(
        state.joint_names, state.joint_positions, state.joint_velocities,
        np.zeros(len(state.joint_names)), stamp)
    yield topics.EE_POSE, make_pose_stamped(state.ee_position, state.ee_orientation, stamp,
                                            topics.WORLD_FRAME)
    success = sim.success()
    yield topics.TASK_SUCCESS, Bool(data=success)
    yield topics.TASK_REWARD, Float32(data=1.0 if success else 0.0)
    yield topics.TASK_STATE, make_labelled_array(sim.task_state())


def delta_to_twist(delta: np.ndarray, control_hz: float) -> np.ndarray:
    """
    Turn a delta action's arm part into a twist ``[vx, vy, vz, wx, wy, wz]``.

    The angular velocity is the rotation vector of the roll/pitch/yaw turn
    divided by the control period, so a controller that integrates the twist
    over one period turns exactly as the simulator's delta action does.
    """
    turn = quat_to_rotvec(quat_from_euler(np.asarray(delta[3:6], dtype=float)))
    return np.concatenate([np.asarray(delta[:3], dtype=float), turn]) * control_hz


def twist_to_delta(twist: np.ndarray, control_hz: float) -> np.ndarray:
    """Invert :func:`delta_to_twist`: the delta action's arm part for one control period."""
    twist = np.asarray(twist, dtype=float) / control_hz
    return np.concatenate([twist[:3], quat_to_euler(quat_from_rotvec(twist[3:6]))])


def command_messages(action: np.ndarray, action_mode: str, control_hz: float,
                     stamp: Time) -> Messages:
    """
    Yield the command messages that make the sim graph execute ``action``.

    Delta actions become a twist held for one control period (see
    :func:`delta_to_twist`); absolute actions a target pose. The gripper fraction becomes
    an opening width in metres and is sent first, the arm command last.
    """
    yield topics.GRIPPER_COMMAND, Float64(data=float(action[-1]) * MAX_GRIPPER_WIDTH)
    if action_mode == 'delta':
        twist = TwistStamped()
        twist.header.stamp = stamp
        twist.header.frame_id = topics.WORLD_FRAME
        rate = delta_to_twist(action[:6], control_hz)
        twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = rate[:3]
        twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = rate[3:]
        yield topics.ARM_DELTA_TWIST, twist
    else:
        yield topics.ARM_TARGET_POSE, make_pose_stamped(action[:3], action[3:7], stamp,
                                                        topics.WORLD_FRAME)
