"""
ROS 2 adapter of a trained BC policy: observations in, safety-filtered arm commands out.

The node is inactive until ``~/activate`` (std_srvs/SetBool) is called with
true; false deactivates it. While active, every new observation step (a new
``/joint_states`` stamp with an ``/ee_pose`` of the same stamp, plus a
``/task/state`` received since the previous step when the policy's state
layout has task fields, plus a ``/perception/multiview/image`` of the same
stamp when the policy looks at images) yields one action from
:class:`BCPolicyRunner` (base + residual for a residual run,
:func:`visual_rl_stack.core.policy.open_policy`). The action passes the :class:`SafetyFilter` (the
observation age is the node clock, sim time under ``use_sim_time``, minus the
observation stamp) and is published with
:func:`visual_rl_stack.ros.step_messages.command_messages`, stamped with the
observation stamp. Every safety issue is published on ``/diagnostics``
(``policy_node: safety``). Stale, non-finite or incomplete observations, a
tiled image that does not match the policy's views, and inference failures
make the arm hold still and are reported; they never stop the node.

The tiled multi-view image is split left to right into the policy's views,
in the policy's view order: the camera node's ``cameras`` must list the same
views in the same order and its ``image_width``/``image_height`` must be the
policy's image size.

Episode boundaries: the action queue and observation window are cleared on
every ``/task/instruction`` message (latched; the simulator and a task
operator publish one per episode) and when an observation stamp goes back in
time (a restarted simulator or a looped bag). Sim time alone cannot mark an
episode: the simulator keeps it monotonic across resets.

Online fine-tuning (``finetune``, residual runs only): the node hands each
observation step, with the reward that arrived with it (``/task/success`` as
a sparse reward, or a Float32 ``reward_topic``, with ``/task/success`` still
ending the episode; a step is complete only once its reward has arrived), to
the run's online learner, which returns an exploring action: for a PPO run
an :class:`.resip.online_learner.OnlineResidualLearner`, which may run a PPO
update at every new episode; for a resfit run an
:class:`.resfit.online.OnlineResFiTLearner`, which updates off-policy in a
background thread or between episodes (``finetune_updates``) and saves its
whole state to ``finetune_out`` at every episode end and when the node is
destroyed, so a restarted node resumes. A non-finite reward holds the arm
with a ``non_finite_reward`` diagnostic and is never learned from.

Inference runs in its own callback group (a guard condition), so on a
MultiThreadedExecutor ``/clock`` and the sensor topics keep flowing while the
policy samples; on a SingleThreadedExecutor it simply runs in turn.
"""

import math
import sys
import threading
from typing import Any, Optional, Union

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, TwistStamped
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, Float32MultiArray, Float64, String
from std_srvs.srv import SetBool
from visual_rl_stack.core.devices import limit_callback_torch
from visual_rl_stack.core.image_buffers import ConversionError, image_to_array
from visual_rl_stack.core.observation import flatten_state, state_fields
from visual_rl_stack.core.policy import open_policy, PolicyOptions
from visual_rl_stack.perception.preprocess import split_tiled
from visual_rl_stack.ros import topics
from visual_rl_stack.ros.bringup import run_node
from visual_rl_stack.ros.msg_conversions import (labelled_array_to_dict, pose_to_arrays,
                                                 stamp_to_seconds)
from visual_rl_stack.ros.node_params import declare_params, ParamSpec
from visual_rl_stack.ros.step_messages import command_messages
from visual_rl_stack.sim.robot import Workspace

from .resfit.agent import ResFiTPolicyRunner
from .resfit.online import OnlineResFiTLearner
from .resip.online_learner import OnlineResidualLearner
from .safety_filter import ERROR, FilterResult, SafetyFilter, SafetyIssue, SafetyLimits, WARN

PARAMS = {
    'policy': ParamSpec('', 'Shipped model name (vrl models), BC or residual run folder, '
                        'or checkpoint folder to load (required).',
                        read_only=True),
    'device': ParamSpec('auto', 'Inference device: auto, cpu, cuda or cuda:N.', read_only=True),
    'inference_steps': ParamSpec(0, 'Denoising steps per action chunk; 0 = the policy default.',
                                 low=0, high=1000, read_only=True),
    'action_steps': ParamSpec(0, 'Actions executed from each chunk before re-planning; 0 = the '
                              'policy default.', low=0, high=1000, read_only=True),
    'warm_start': ParamSpec(0.0, 'Start each chunk from the unexecuted tail of the previous '
                            'one, noised this fraction (0-1] of the way along the schedule; '
                            '0 = off.', low=0.0, high=1.0, read_only=True),
    'noise_scale': ParamSpec(-1.0, 'Scale of the initial noise of every chunk (0 = '
                             'deterministic); negative = the policy default (1, or the scale a '
                             "residual's base was trained with).", low=-1.0, high=10.0,
                             read_only=True),
    'control_hz': ParamSpec(10.0, 'Control rate (Hz) the policy was trained at; twists are '
                            'deltas times this rate.', low=1.0, high=100.0, read_only=True),
    'observation_timeout': ParamSpec(0.5, 'Oldest observation (s, node clock) the policy may '
                                     'act on; older ones, or none for this long, hold still.',
                                     low=0.01, high=60.0, read_only=True),
    'max_linear_speed': ParamSpec(0.25, 'TCP speed limit (m/s) of the safety filter.',
                                  low=0.001, high=5.0, read_only=True),
    'max_angular_speed': ParamSpec(1.0, 'TCP turn-rate limit (rad/s) of the safety filter.',
                                   low=0.001, high=20.0, read_only=True),
    'workspace_min': ParamSpec(list(Workspace.lo), 'Lower corner [x, y, z] (m, world) of the box '
                               'TCP targets are clamped into.', read_only=True),
    'workspace_max': ParamSpec(list(Workspace.hi), 'Upper corner [x, y, z] (m, world) of the box '
                               'TCP targets are clamped into.', read_only=True),
    'torch_threads': ParamSpec(1, 'Threads torch uses for inference and on-arm updates; '
                               'more than one lets this node take the cores the rest of the '
                               'graph needs.', low=1, high=256, read_only=True),
    'active_on_start': ParamSpec(False, 'Start active instead of waiting for ~/activate.',
                                 read_only=True),
    'finetune': ParamSpec(False, 'Fine-tune the residual of a residual run online: explore, '
                          'collect transitions, run PPO between episodes.', read_only=True),
    'finetune_out': ParamSpec('', 'Folder the fine-tuned residual run, transitions and update '
                              'stats are written to (required with finetune).', read_only=True),
    'reward_topic': ParamSpec('', 'std_msgs/Float32 reward topic, one message per observation '
                              'step; empty = sparse reward from /task/success (std_msgs/Bool).',
                              read_only=True),
    'finetune_min_steps': ParamSpec(1, 'Transitions to collect before a PPO update (run at the '
                                    'next episode start).', low=1, high=10_000_000,
                                    read_only=True),
    'finetune_updates': ParamSpec('background', "When a resfit run's off-policy updates run: "
                                  "'background' (a thread, as data arrives) or "
                                  "'between_episodes'.", read_only=True),
    'finetune_utd': ParamSpec(0.0, 'Off-policy updates per recorded step (resfit runs); 0 = '
                              "the run's own.", low=0.0, high=100.0, read_only=True),
    'finetune_demos': ParamSpec('', 'Folder of demonstration bags mixed into every batch of '
                                'a resfit run (sparse reward: needs an empty reward_topic); '
                                'empty = none.', read_only=True),
}

#: State-layout fields that come from /joint_states and /ee_pose; the rest are task fields.
ROBOT_FIELDS = ('ee_position', 'ee_orientation', 'gripper_width', 'joint_positions')
#: Stamped messages kept per topic while waiting for the rest of a step.
KEEP = 10
ACTION_MODES = {7: 'delta', 8: 'absolute'}


class BadReward(ValueError):
    """A fine-tuning reward the learner must not learn from."""


class PolicyNode(Node):
    """Runs a BC policy behind a safety filter; inactive until ``~/activate``."""

    def __init__(self, **kwargs: Any):
        """
        Declare parameters, load the policy, create the interfaces.

        ``kwargs`` go to ``rclpy.node.Node`` (context, parameter_overrides, cli_args).
        Raises ValueError for invalid parameters or a policy that cannot be loaded.
        """
        super().__init__('policy_node', **kwargs)
        self.values = values = declare_params(self, PARAMS)
        if not values['policy']:
            raise ValueError('policy_node: parameter policy (a BC run or checkpoint folder) '
                             'is required')
        for name in ('workspace_min', 'workspace_max'):
            corner = values[name]
            if (len(corner) != 3 or not all(isinstance(v, (int, float)) for v in corner)
                    or not all(math.isfinite(v) for v in corner)):
                raise ValueError(f'policy_node: invalid parameters: {name} must be 3 finite '
                                 f'numbers [x, y, z], got {corner!r}')
        try:
            self.limits = SafetyLimits(
                workspace=Workspace(tuple(float(v) for v in values['workspace_min']),
                                    tuple(float(v) for v in values['workspace_max'])),
                max_linear_speed=values['max_linear_speed'],
                max_angular_speed=values['max_angular_speed'],
                control_hz=values['control_hz'],
                observation_timeout=values['observation_timeout'])
            self.runner = open_policy(values['policy'], PolicyOptions.from_ros_parameters(values))
        except (OSError, ValueError) as error:
            raise ValueError(f'policy_node: {error}') from error
        self.learner = self._make_learner(values)
        dim = self.runner.action_dim
        self.action_mode = self.runner.action_mode or ACTION_MODES.get(dim)
        if self.action_mode not in ('delta', 'absolute') or dim != {
                'delta': 7, 'absolute': 8}[self.action_mode]:
            raise ValueError(f'policy_node: policy {values["policy"]} outputs {dim}-dim '
                             f'{self.action_mode!r} actions; expected 7 delta or 8 absolute')
        self.filter = SafetyFilter(self.limits, self.action_mode)
        labels = self.runner.state_labels
        self.needs_task = bool(labels) and any(n not in ROBOT_FIELDS for n, _ in labels)
        self.active = bool(values['active_on_start'])
        self._lock = threading.Lock()
        self._joints: dict[float, JointState] = {}
        self._joint_stamp: Optional[float] = None
        self._poses: dict[float, PoseStamped] = {}
        self._images: dict[float, Image] = {}
        self._task_state: Optional[Float32MultiArray] = None
        self._task_fresh = False
        self._reward: Optional[tuple[float, bool]] = None
        self._success = False
        self._last_stamp: Optional[float] = None
        self._last_seen: Optional[float] = None
        self._pending: Optional[tuple] = None
        self._reset_requested = False
        self.steps = 0
        self._create_interfaces()
        self.get_logger().info(
            f'policy {self.runner.checkpoint} ({self.action_mode} actions, views '
            f'{list(self.runner.views)}, task fields {self.needs_task}) on '
            f'{self.runner.device}; {"active" if self.active else "inactive until ~/activate"}')

    def _make_learner(self, values: dict
                      ) -> Optional[Union[OnlineResidualLearner, OnlineResFiTLearner]]:
        """Return the online learner when fine-tuning is on (raises ValueError if it cannot be)."""
        if not values['finetune']:
            return None
        if not values['finetune_out']:
            raise ValueError('policy_node: finetune needs parameter finetune_out (a folder)')
        try:
            if isinstance(self.runner, ResFiTPolicyRunner):
                if values['finetune_demos'] and values['reward_topic']:
                    raise ValueError('finetune_demos are relabelled with the sparse reward; '
                                     'leave reward_topic empty to fine-tune with them')
                return OnlineResFiTLearner(self.runner, values['finetune_out'],
                                           values['finetune_updates'],
                                           values['finetune_utd'] or None,
                                           values['finetune_demos'] or None)
            if values['finetune_demos']:
                raise ValueError('finetune_demos needs a resfit run; PPO learns on-policy')
            return OnlineResidualLearner(self.runner, values['finetune_out'],
                                         min_steps=values['finetune_min_steps'])
        except (OSError, ValueError) as error:
            raise ValueError(f'policy_node: cannot fine-tune: {error}') from error

    def _create_interfaces(self) -> None:
        """Create subscriptions, publishers, the service, the watchdog and inference trigger."""
        reliable = topics.RELIABLE_QOS
        sub = self.create_subscription
        sub(JointState, topics.JOINT_STATES, self._on_joints, reliable)
        sub(PoseStamped, topics.EE_POSE, self._on_pose, reliable)
        sub(String, topics.TASK_INSTRUCTION, self._on_instruction, topics.LATCHED_QOS)
        if self.needs_task:
            sub(Float32MultiArray, topics.TASK_STATE, self._on_task_state, reliable)
        if self.runner.uses_images:
            sub(Image, topics.MULTIVIEW_IMAGE, self._on_image, topics.SENSOR_QOS)
        if self.learner is not None:
            topic = self.values['reward_topic']
            if topic:
                sub(Bool, topics.TASK_SUCCESS, self._on_success, reliable)
                sub(Float32, topic, lambda m: self._on_reward(float(m.data), self._success),
                    reliable)
            else:
                sub(Bool, topics.TASK_SUCCESS,
                    lambda m: self._on_reward(1.0 if m.data else 0.0, bool(m.data)), reliable)
        pub = self.create_publisher
        self.arm_pubs = {topics.ARM_DELTA_TWIST: pub(TwistStamped, topics.ARM_DELTA_TWIST,
                                                     reliable),
                         topics.ARM_TARGET_POSE: pub(PoseStamped, topics.ARM_TARGET_POSE,
                                                     reliable),
                         topics.GRIPPER_COMMAND: pub(Float64, topics.GRIPPER_COMMAND, reliable)}
        self.diag_pub = pub(DiagnosticArray, topics.DIAGNOSTICS, reliable)
        self.create_service(SetBool, '~/activate', self._on_activate)
        self.inference_group = MutuallyExclusiveCallbackGroup()
        self._trigger = self.create_guard_condition(self._on_infer,
                                                    callback_group=self.inference_group)
        self.create_timer(self.limits.observation_timeout, self._watchdog)

    # Inputs -------------------------------------------------------------------------------

    @staticmethod
    def _keep(store: dict, msg: Any) -> None:
        """Keep ``msg`` under its stamp, dropping the earliest received beyond :data:`KEEP`."""
        stamp = stamp_to_seconds(msg.header.stamp)
        store.pop(stamp, None)
        store[stamp] = msg
        while len(store) > KEEP:
            del store[next(iter(store))]

    def _on_joints(self, msg: JointState) -> None:
        with self._lock:
            self._keep(self._joints, msg)
            self._joint_stamp = stamp_to_seconds(msg.header.stamp)
        self._check_step()

    def _on_pose(self, msg: PoseStamped) -> None:
        with self._lock:
            self._keep(self._poses, msg)
        self._check_step()

    def _on_image(self, msg: Image) -> None:
        with self._lock:
            self._keep(self._images, msg)
        self._check_step()

    def _on_task_state(self, msg: Float32MultiArray) -> None:
        with self._lock:
            self._task_state, self._task_fresh = msg, True
        self._check_step()

    def _on_success(self, msg: Bool) -> None:
        """Keep the latest success: it ends a learning episode paid by a reward topic."""
        self._success = bool(msg.data)

    def _on_reward(self, reward: float, terminal: bool) -> None:
        """Keep the reward that came with the latest observation step (fine-tuning only)."""
        with self._lock:
            self._reward = (reward, terminal)
        self._check_step()

    def _on_instruction(self, msg: String) -> None:
        """Start a new episode: forget the observation window and queued actions."""
        self.get_logger().info(f'new episode: {msg.data!r}; action queue cleared')
        self._new_episode()

    def _new_episode(self) -> None:
        """Drop the pending step; the inference callback resets the runner and filter."""
        with self._lock:
            self._reset_requested = True
            self._pending = None

    def _on_activate(self, request: SetBool.Request, response: SetBool.Response
                     ) -> SetBool.Response:
        """Switch the policy on (fresh queue) or off."""
        if request.data and not self.active:
            self._new_episode()
            with self._lock:
                self._last_seen = self._now()
        self.active = bool(request.data)
        if self.active:
            self._check_step()  # act on the current observation, not only the next one
        response.success = True
        response.message = 'policy active' if self.active else 'policy inactive'
        self.get_logger().info(response.message)
        return response

    def _check_step(self) -> None:
        """Queue the newest complete observation step for inference (latest wins)."""
        with self._lock:
            if not self.active:
                return  # nothing is consumed while inactive: activation acts on the latest
            stamp = self._joint_stamp  # the latest received, even if older (time went back)
            if stamp is None or stamp not in self._joints:
                return
            if stamp == self._last_stamp or stamp not in self._poses:
                return
            if self.needs_task and not self._task_fresh:
                return
            if self.learner is not None and self._reward is None:
                return  # a fine-tuning step needs the reward that came with it
            if self.runner.uses_images and stamp not in self._images:
                return
            if self._last_stamp is not None and stamp < self._last_stamp:
                self.get_logger().info('observation stamp went back in time: new episode')
                self._reset_requested = True
            self._last_stamp = stamp
            self._last_seen = self._now()
            self._task_fresh = False
            self._pending = (self._joints[stamp], self._poses[stamp], self._task_state,
                             self._images.get(stamp), self._reward)
            self._reward = None
        self._trigger.trigger()

    # Acting -------------------------------------------------------------------------------

    def _now(self) -> float:
        """Return the node clock (sim time under use_sim_time) in seconds."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _observation(self, joints: JointState, pose: PoseStamped,
                     task: Optional[Float32MultiArray], image: Optional[Image]
                     ) -> tuple[np.ndarray, dict, list[SafetyIssue]]:
        """Return ``(state, images, issues)``; any issue means the policy must not act."""
        issues = []
        position, orientation = pose_to_arrays(pose.pose)
        task_fields = labelled_array_to_dict(task) if (self.needs_task and task) else None
        try:
            state, labels = flatten_state(state_fields(
                position, orientation, joints.name, joints.position, task_fields))
        except ValueError as error:
            return np.zeros(0), {}, [SafetyIssue(ERROR, 'bad_observation',
                                                 f'cannot build the state ({error}); holding')]
        expected = self.runner.state_labels
        if expected is not None and labels != expected:
            issues.append(SafetyIssue(ERROR, 'state_layout', f'observation state layout '
                                      f'{labels} is not the policy layout {expected}; holding'))
        elif not np.isfinite(state).all():
            bad = [n for n, v in state_fields(position, orientation, joints.name,
                                              joints.position, task_fields).items()
                   if not np.isfinite(v).all()]
            issues.append(SafetyIssue(ERROR, 'non_finite_observation',
                                      f'observation has NaN or inf in {bad}; holding still'))
        images = {}
        if self.runner.uses_images and not issues:
            try:
                images = split_tiled(image_to_array(image), self.runner.views,
                                     self.runner.image_size)
            except (ConversionError, ValueError) as error:
                issues.append(SafetyIssue(ERROR, 'image_mismatch', f'{error}; holding still'))
        return state, images, issues

    def _on_infer(self) -> None:
        """Compute, filter and publish the action of the pending observation step."""
        limit_callback_torch(self.values['torch_threads'])
        with self._lock:
            pending, self._pending = self._pending, None
            reset, self._reset_requested = self._reset_requested, False
        if reset:
            # Only this (mutually exclusive) callback touches the runner and the filter state.
            if self.learner is not None:
                self.end_learning_episode()
            self.runner.reset()
            self.filter.reset()
        if pending is None or not self.active:
            return
        joints, pose, task, image, reward = pending
        stamp = joints.header.stamp
        position, orientation = pose_to_arrays(pose.pose)
        try:
            state, images, issues = self._observation(joints, pose, task, image)
        except Exception as error:  # noqa: BLE001 - a bad message must not stop the node
            state, images = None, {}
            issues = [SafetyIssue(ERROR, 'bad_observation', f'{error}; holding still')]
        age = self._now() - stamp_to_seconds(stamp)
        if not issues and not age <= self.limits.observation_timeout:
            # Do not spend an inference on a stale observation; the filter says why.
            result = self.filter.apply(self.filter.hold_action(position, orientation),
                                       position, age, orientation)
        elif issues:
            result = FilterResult(self.filter.hold_action(position, orientation), True, issues)
        else:
            try:
                if self.learner is not None:
                    earned, terminal = reward
                    if not math.isfinite(earned):
                        self.learner.interrupt()
                        raise BadReward(f'reward {earned} is not finite: the step is not '
                                        'learned from; holding still')
                    action = self.learner.act(state, images or None, earned, terminal)
                else:
                    action = self.runner.act_from_observation(state, images or None)
            except BadReward as error:
                action = None
                issues = [SafetyIssue(ERROR, 'non_finite_reward', str(error))]
            except Exception as error:  # noqa: BLE001 - report, hold, keep running
                action = None
                issues = [SafetyIssue(ERROR, 'inference_error',
                                      f'policy inference failed ({error}); holding still')]
            if action is None:
                result = FilterResult(self.filter.hold_action(position, orientation), True,
                                      issues)
            else:
                age = self._now() - stamp_to_seconds(stamp)
                result = self.filter.apply(action, position, age, orientation)
        self.steps += 1
        self._publish(result, stamp)

    def end_learning_episode(self) -> None:
        """End the learner's episode; log what it learned (PPO updates between episodes)."""
        try:
            stats = self.learner.end_episode()
        except Exception as error:  # noqa: BLE001 - a failed update must not stop the arm
            self.get_logger().error(f'fine-tuning update failed: {error}')
            return
        if stats is not None:
            self.get_logger().info(f'fine-tuning: {self.learner.describe(stats)}')

    def destroy_node(self) -> None:
        """Stop the learner's updates and save what it collected, then destroy the node."""
        if self.learner is not None:
            try:
                self.learner.close()
            except Exception as error:  # noqa: BLE001 - report, never block the shutdown
                self.get_logger().error(f'could not save the fine-tuning state: {error}')
        super().destroy_node()

    def _watchdog(self) -> None:
        """Hold still and report when active but no observation step arrived in time."""
        if not self.active:
            return
        now = self._now()
        with self._lock:
            last = self._last_seen
        if last is not None and now - last <= self.limits.observation_timeout:
            return
        issue = SafetyIssue(ERROR, 'missing_observation',
                            f'no complete observation step for over '
                            f'{self.limits.observation_timeout} s; holding still')
        stamp = self.get_clock().now().to_msg()
        with self._lock:
            pose = self._poses[next(reversed(self._poses))] if self._poses else None
        if pose is None and self.action_mode == 'absolute':
            # No measured pose to hold: report only, never send a made-up target.
            self._publish_issues([issue], stamp)
            return
        position, orientation = pose_to_arrays(pose.pose) if pose else (None, None)
        self._publish(FilterResult(self.filter.hold_action(position, orientation), True,
                                   [issue]), stamp)

    def _publish(self, result: FilterResult, stamp: Time) -> None:
        """Publish the commands of ``result`` and its issues."""
        for topic, msg in command_messages(result.action, self.action_mode,
                                           self.limits.control_hz, stamp):
            self.arm_pubs[topic].publish(msg)
        if result.issues:
            self._publish_issues(result.issues, stamp)

    def _publish_issues(self, issues: list[SafetyIssue], stamp: Time) -> None:
        """Publish ``issues`` as one ``policy_node: safety`` status."""
        level = DiagnosticStatus.ERROR if any(i.level == ERROR for i in issues) else (
            DiagnosticStatus.WARN if any(i.level == WARN for i in issues) else DiagnosticStatus.OK)
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: safety', hardware_id='policy',
            message='; '.join(i.message for i in issues),
            values=[KeyValue(key=i.code, value=i.level) for i in issues])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = stamp
        self.diag_pub.publish(msg)
        self.get_logger().warning(status.message, throttle_duration_sec=1.0)


def main(args: Optional[list[str]] = None) -> int:
    """Run the policy node until Ctrl-C; exit 1 with a message on invalid parameters."""
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    sys.exit(main())
