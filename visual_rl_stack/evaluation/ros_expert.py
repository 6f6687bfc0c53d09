"""
Run the scripted experts through the ROS graph instead of on the simulator object.

The experts read robot state, privileged task state and the commanded pose
that delta actions accumulate on. Here those come from topics (and from the
commands this controller sent), so an episode driven this way exercises the
same DDS path as a policy on a robot.
"""

import time
from typing import Optional

import numpy as np
from visual_rl_stack.ros.lockstep_client import LockstepClient, Observation
from visual_rl_stack.sim.commanded_pose import CommandedPose
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.robot import RobotState
from visual_rl_stack.sim.tasks import make_task

from .episodes import EpisodeResult


class TopicSimView:
    """The slice of ``TabletopSim`` an expert reads, rebuilt from ROS observations."""

    def __init__(self, commanded: CommandedPose):
        """Track the commanded pose the way the simulator does."""
        self.commanded = commanded
        self.max_delta = commanded.max_delta
        self.max_rot_delta = commanded.max_rot_delta
        self.obs: Optional[Observation] = None

    def robot_state(self) -> RobotState:
        """Return the robot state of the latest observation."""
        return self.obs.robot

    def task_state(self) -> dict[str, np.ndarray]:
        """Return the privileged task state of the latest observation."""
        return self.obs.task_state

    def delta_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the pose a delta action is added to."""
        return self.commanded.reference(self.obs.robot.ee_position)


def run_ros_episode(client: LockstepClient, task: str, seed: int, action_mode: str = 'delta',
                    max_steps: Optional[int] = None) -> tuple[EpisodeResult, Observation]:
    """Run the scripted expert for one episode through ``client``; return it, its last view."""
    start = time.perf_counter()
    obs = client.reset(task=task, seed=seed)
    view = TopicSimView(CommandedPose())
    view.commanded.set_target(obs.robot.ee_position, obs.robot.ee_orientation)
    expert = make_expert(task, action_mode, noise=0.0, rng=np.random.default_rng(seed))
    expert.reset()
    limit = max_steps or make_task(task).max_episode_steps
    steps, total = 0, 0.0
    while steps < limit and not obs.success:
        view.obs = obs
        action = expert.act(view)
        if action_mode == 'delta':
            view.commanded.apply_delta(action[:6], obs.robot.ee_position)
        else:
            view.commanded.set_target(action[:3], action[3:7])
        obs = client.step(action, action_mode)
        steps += 1
        total += obs.reward
    return EpisodeResult(seed, bool(obs.success), steps, total, time.perf_counter() - start), obs
