r"""
Replay episodes of a peg_insert or stack policy and say how each one ended.

Success rates say how often a policy fails, not how: this replays each seed
with ``vrl eval``'s episode loop, reads the objects' final poses and sorts
the failures by them. peg_insert: toppled or held crooked (tilt over 60
degrees), over the hole but turned (centre within 5 mm), beside the hole.
stack: tower built but the cube still held, top cube held elsewhere, top
cube left on the table where it was (not picked up, moved under 2 cm) or
elsewhere (dropped or pushed), top cube off the tower (leaning or offset),
bottom cube moved off the table. The task is the policy's own. Used for the failure
breakdowns in docs/results.md::

    python tools/failure_modes.py resip_peg_insert --seeds 1000 1099
    python tools/failure_modes.py bc_state_peg_insert --seeds 1000 1099 \
        --noise-scale 0 --inference-steps 10 --action-steps 2
"""

import argparse
from collections import Counter
import json
from typing import Callable, Optional

import numpy as np
import pybullet as pb
from visual_rl_stack.core.policy import open_policy, PolicyOptions
from visual_rl_stack.evaluation.episodes import policy_sim_config, PolicyController, run_episode
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.tasks import Task
from visual_rl_stack.sim.tasks.lift import CUBE_HALF
from visual_rl_stack.sim.tasks.peg_insert import PEG_HALF_HEIGHT, PegInsertTask, WALL_HEIGHT
from visual_rl_stack.sim.tasks.stack import StackTask, Z_TOLERANCE

TOPPLED_DEG = 60.0
OVER_HOLE_MM = 5.0
NOT_PICKED_MM = 20.0
#: Body id -> its position after the episode's reset.
Starts = dict[int, np.ndarray]


def peg_final_pose(task: PegInsertTask, start: Starts) -> dict:
    """Return the peg's offset from the hole axis, turn, tilt and height over the rim."""
    pos, orn = task.pose(task.peg)
    yaw = pb.getEulerFromQuaternion(orn)[2]
    turn = abs((yaw - task.hole_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)
    return {'offset_mm': round(1000 * float(np.linalg.norm(pos[:2] - task.hole[:2])), 1),
            'turn_deg': round(float(np.degrees(turn)), 1),
            'tilt_deg': round(float(np.degrees(task.tilt())), 1),
            'bottom_above_rim_mm': round(1000 * float(pos[2] - PEG_HALF_HEIGHT - WALL_HEIGHT),
                                         1)}


def peg_failure_mode(pose: dict) -> str:
    """Name how a failed peg_insert episode ended from its final peg pose."""
    if pose['tilt_deg'] > TOPPLED_DEG:
        return 'toppled or held crooked'
    return 'over the hole, turned' if pose['offset_mm'] <= OVER_HOLE_MM else 'beside the hole'


def stack_final_pose(task: StackTask, start: Starts) -> dict:
    """Return the top cube's offset from the bottom one and its start, heights, and if held."""
    bottom, top = (task.pose(uid)[0] for uid in task.cubes[:2])
    moved = np.linalg.norm(top[:2] - start[task.cubes[1]][:2])
    return {'offset_mm': round(1000 * float(np.linalg.norm(top[:2] - bottom[:2])), 1),
            'top_moved_mm': round(1000 * float(moved), 1),
            'top_above_table_mm': round(1000 * float(top[2] - CUBE_HALF), 1),
            'bottom_above_table_mm': round(1000 * float(bottom[2] - CUBE_HALF), 1),
            'top_held': task.touching_robot(task.cubes[1]),
            'stacked': task.stages_completed() >= 1}


def stack_failure_mode(pose: dict) -> str:
    """Name how a failed stack episode ended from its final cube poses."""
    if pose['stacked']:  # a standing tower fails only while the robot still holds its cube
        return 'tower built, cube still held'
    if pose['bottom_above_table_mm'] > 1000 * Z_TOLERANCE:
        return 'bottom cube moved off the table'
    if pose['top_held']:
        return 'top cube held, not on the tower'
    if pose['top_above_table_mm'] <= 1000 * Z_TOLERANCE:
        if pose['top_moved_mm'] < NOT_PICKED_MM:
            return 'top cube on the table, not picked up'
        return 'top cube on the table, dropped or pushed'
    return 'top cube off the tower'


#: Task name -> (final pose reader, failure namer).
CLASSIFIERS: dict[str, tuple[Callable[[Task, Starts], dict], Callable[[dict], str]]] = {
    'peg_insert': (peg_final_pose, peg_failure_mode),
    'stack': (stack_final_pose, stack_failure_mode),
}


def main(argv: Optional[list[str]] = None) -> None:
    """Replay the seeds, print one JSON line per episode, then the failure counts."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('policy', help='shipped model name or run folder')
    parser.add_argument('--seeds', type=int, nargs=2, required=True, metavar=('FIRST', 'LAST'))
    parser.add_argument('--noise-scale', type=float, default=None)
    parser.add_argument('--inference-steps', type=int, default=None)
    parser.add_argument('--action-steps', type=int, default=None)
    args = parser.parse_args(argv)
    runner = open_policy(args.policy, PolicyOptions(num_inference_steps=args.inference_steps,
                                                    action_steps=args.action_steps,
                                                    noise_scale=args.noise_scale))
    if runner.task not in CLASSIFIERS:
        parser.error(f'{args.policy} is a {runner.task} policy; failure modes are named for '
                     f'{", ".join(sorted(CLASSIFIERS))}')
    final_pose, failure_mode = CLASSIFIERS[runner.task]
    sim = TabletopSim(policy_sim_config(runner.task, runner))
    policy = PolicyController(runner, sim)
    modes: Counter = Counter()
    try:
        for seed in range(args.seeds[0], args.seeds[1] + 1):
            sim.reset(seed=seed)  # run_episode resets to the same state again
            start = {uid: sim.task.pose(uid)[0] for uid in sim.task.bodies}
            result = run_episode(sim, policy, seed)
            row = {'seed': seed, 'success': result.success, 'steps': result.steps,
                   **final_pose(sim.task, start)}
            if not result.success:
                row['mode'] = failure_mode(row)
                modes[row['mode']] += 1
            print(json.dumps(row), flush=True)
    finally:
        sim.close()
    print(json.dumps({'task': runner.task, 'episodes': args.seeds[1] - args.seeds[0] + 1,
                      'failures': sum(modes.values()), 'modes': dict(modes)}))


if __name__ == '__main__':
    main()
