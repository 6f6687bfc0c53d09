r"""
Replay peg_insert episodes of a policy and say how each one ended.

Success rates say how often a policy fails, not how: this replays each seed
with ``vrl eval``'s episode loop and reads the peg's final pose, then sorts
the failures into toppled or held crooked (tilt over 60 degrees), over the
hole but turned (centre within 5 mm), and beside the hole. Used for the
failure breakdown in docs/results.md::

    python tools/peg_failure_modes.py resip_peg_insert --seeds 1000 1099
    python tools/peg_failure_modes.py bc_state_peg_insert --seeds 1000 1099 \
        --noise-scale 0 --inference-steps 10 --action-steps 2
"""

import argparse
from collections import Counter
import json
from typing import Optional

import numpy as np
import pybullet as pb

from visual_rl_stack.evaluation import bc_sim_config, load_bc_runner, run_episode
from visual_rl_stack.residual_policy.bc_runner import BCSimPolicy
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.tasks.peg_insert import PEG_HALF_HEIGHT, PegInsertTask, WALL_HEIGHT

TOPPLED_DEG = 60.0
OVER_HOLE_MM = 5.0


def final_pose(task: PegInsertTask) -> dict:
    """Return the peg's offset from the hole axis, turn, tilt and height over the rim."""
    pos, orn = task.pose(task.peg)
    roll, pitch, yaw = pb.getEulerFromQuaternion(orn)
    turn = abs((yaw - task.hole_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)
    return {'offset_mm': round(1000 * float(np.linalg.norm(pos[:2] - task.hole[:2])), 1),
            'turn_deg': round(float(np.degrees(turn)), 1),
            'tilt_deg': round(float(np.degrees(max(abs(roll), abs(pitch)))), 1),
            'bottom_above_rim_mm': round(1000 * float(pos[2] - PEG_HALF_HEIGHT - WALL_HEIGHT),
                                         1)}


def failure_mode(pose: dict) -> str:
    """Name how a failed episode ended from its final peg pose."""
    if pose['tilt_deg'] > TOPPLED_DEG:
        return 'toppled or held crooked'
    return 'over the hole, turned' if pose['offset_mm'] <= OVER_HOLE_MM else 'beside the hole'


def main(argv: Optional[list[str]] = None) -> None:
    """Replay the seeds, print one JSON line per episode, then the failure counts."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('policy', help='shipped model name or run folder')
    parser.add_argument('--seeds', type=int, nargs=2, required=True, metavar=('FIRST', 'LAST'))
    parser.add_argument('--noise-scale', type=float, default=None)
    parser.add_argument('--inference-steps', type=int, default=None)
    parser.add_argument('--action-steps', type=int, default=None)
    args = parser.parse_args(argv)
    runner = load_bc_runner(args.policy, num_inference_steps=args.inference_steps,
                            action_steps=args.action_steps, noise_scale=args.noise_scale)
    sim = TabletopSim(bc_sim_config('peg_insert', runner))
    policy = BCSimPolicy(runner, sim)
    modes: Counter = Counter()
    try:
        for seed in range(args.seeds[0], args.seeds[1] + 1):
            result = run_episode(sim, policy, seed)
            row = {'seed': seed, 'success': result.success, 'steps': result.steps,
                   **final_pose(sim.task)}
            if not result.success:
                row['mode'] = failure_mode(row)
                modes[row['mode']] += 1
            print(json.dumps(row), flush=True)
    finally:
        sim.close()
    print(json.dumps({'episodes': args.seeds[1] - args.seeds[0] + 1,
                      'failures': sum(modes.values()), 'modes': dict(modes)}))


if __name__ == '__main__':
    main()
