"""A test node that plays the robot's topics to a policy node and records what it sends."""

from conftest import spin_until
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, Float64
from std_srvs.srv import SetBool
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.msg_conversions import (make_joint_state, make_labelled_array,
                                                 make_pose_stamped, stamp_from_seconds)


class Harness:
    """A test node that fakes the robot's topics and records the policy node's outputs."""

    def __init__(self, context, policy_node):
        """Create the fake robot publishers and the command and diagnostic subscriptions."""
        self.node = Node('policy_test', context=context)
        qos = topics.RELIABLE_QOS
        self.joints = self.node.create_publisher(JointState, topics.JOINT_STATES, qos)
        self.pose = self.node.create_publisher(PoseStamped, topics.EE_POSE, qos)
        self.task = self.node.create_publisher(Float32MultiArray, topics.TASK_STATE, qos)
        self.twists, self.grippers, self.diags = [], [], []
        self.node.create_subscription(TwistStamped, topics.ARM_DELTA_TWIST,
                                      self.twists.append, qos)
        self.node.create_subscription(Float64, topics.GRIPPER_COMMAND, self.grippers.append, qos)
        self.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self.diags.append,
                                      qos)
        self.activate = self.node.create_client(SetBool, '/policy_node/activate')
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(policy_node)
        assert spin_until(self.executor, lambda: all(
            p.get_subscription_count() > 0 for p in (self.joints, self.pose, self.task)))

    def publish(self, robot, task_state, stamp_s, positions=None):
        """Publish one observation step stamped ``stamp_s`` (wall-clock seconds)."""
        stamp = stamp_from_seconds(stamp_s)
        positions = robot.joint_positions if positions is None else positions
        self.task.publish(make_labelled_array(task_state))
        self.pose.publish(make_pose_stamped(robot.ee_position, robot.ee_orientation, stamp,
                                            topics.WORLD_FRAME))
        self.joints.publish(make_joint_state(robot.joint_names, positions,
                                             robot.joint_velocities,
                                             np.zeros(len(robot.joint_names)), stamp))
        return stamp

    def set_active(self, active):
        """Call ~/activate and wait for the answer."""
        assert spin_until(self.executor, self.activate.service_is_ready)
        future = self.activate.call_async(SetBool.Request(data=active))
        assert spin_until(self.executor, future.done)
        assert future.result().success

    def twist_at(self, stamp):
        """Return the commanded twists stamped ``stamp``."""
        return [t for t in self.twists if t.header.stamp == stamp]

    def safety_messages(self):
        """Return the messages of every ``policy_node: safety`` status received."""
        return [s.message for d in self.diags for s in d.status
                if s.name == 'policy_node: safety']

    def close(self, policy_node):
        """Shut the executor down and destroy both nodes."""
        self.executor.shutdown()
        policy_node.destroy_node()
        self.node.destroy_node()
