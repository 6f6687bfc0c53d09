"""
Scripted experts: state machines over privileged state that solve every task.

Each expert plans a waypoint (TCP position, gripper heading about world z,
gripper opening, speed) from the simulator's privileged state and turns it into
an action in the simulator's layout. The commanded target moves towards the
waypoint by at most ``speed`` metres per step, so delta and absolute modes
produce the same motion. Optional Gaussian noise (``noise`` is the standard
deviation as a fraction of the per-step delta limits) perturbs the arm motion
but never the gripper, and is damped during the final peg alignment; the state
machines re-check the scene every step and fall back to an earlier phase
(re-grasp, re-approach) when something slips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .robot import DOWN, quat_conjugate, quat_from_euler, quat_from_rotvec, quat_multiply
from .robot import quat_to_euler, quat_to_rotvec, rotation_matrix, yaw_of
from .scene import TabletopSim
from .tasks.lift import CUBE_HALF
from .tasks.peg_insert import PEG_HALF_HEIGHT
from .tasks.push import BLOCK_HALF

FAST = 0.04
SLOW = 0.015
OPEN, CLOSED = 1.0, 0.0
# Pre-grasp opening (6 cm): enough for 4 cm cubes, narrow enough to miss neighbours.
PREGRASP = 0.75
CARRY_Z = 0.16
# Noise is damped near the hole: 1 mm clearance leaves no room for demonstration jitter.
FINE_NOISE = 0.1
APPROACH_DZ = 0.08


@dataclass
class Waypoint:
    """Where the expert wants the TCP next."""

    position: np.ndarray
    yaw: float
    grip: float
    speed: float = FAST
    noise_scale: float = 1.0
    #: xyzw TCP orientation to hold instead of the downward gripper at ``yaw``.
    orientation: Optional[np.ndarray] = None


def gripper_down(yaw: float) -> np.ndarray:
    """Return the xyzw orientation of a downward-pointing gripper with a heading."""
    return quat_multiply(quat_from_rotvec(np.array([0.0, 0.0, yaw])), DOWN)


def wrap(angle: float, period: float) -> float:
    """Map an angle into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


def square_yaw(orientation: np.ndarray) -> float:
    """Return the gripper heading that grips a square object's faces, nearest to zero."""
    return wrap(yaw_of(orientation), np.pi / 2)


class Expert:
    """Base class: phase bookkeeping, waypoint-to-action conversion and noise."""

    def __init__(self, action_mode: str = 'delta', noise: float = 0.0,
                 rng: Optional[np.random.Generator] = None, approach_jitter: float = 0.0):
        """
        Remember the output layout and the noise levels.

        ``noise`` perturbs every action (a fraction of the per-step limits);
        ``approach_jitter`` (metres) moves the pre-grasp waypoint of grasping
        experts by a random horizontal offset per episode, so that their
        descents show how to correct a missed approach.
        """
        if action_mode not in ('delta', 'absolute'):
            raise ValueError(f"action_mode must be 'delta' or 'absolute', got {action_mode!r}")
        if noise < 0 or approach_jitter < 0:
            raise ValueError(f'noise and approach_jitter must be >= 0, got {noise} and '
                             f'{approach_jitter}')
        self.action_mode = action_mode
        self.noise = noise
        self.approach_jitter = approach_jitter
        self.rng = rng or np.random.default_rng()
        self.reset()

    def reset(self) -> None:
        """Start a new episode from the first phase."""
        self.goto('start')
        radius = self.approach_jitter * np.sqrt(self.rng.uniform()) if self.approach_jitter else 0
        angle = self.rng.uniform(-np.pi, np.pi) if self.approach_jitter else 0.0
        #: Horizontal offset of this episode's pre-grasp waypoint (uniform in a disc).
        self.approach_offset = np.array([radius * np.cos(angle), radius * np.sin(angle), 0.0])
        #: The last action without the injected noise (the DART label), or None.
        self.clean_action: Optional[np.ndarray] = None

    def goto(self, phase: str) -> None:
        """Enter a phase and restart its step counter."""
        self.phase = phase
        self.timer = 0

    def plan(self, sim: TabletopSim) -> Waypoint:
        """Return the next waypoint; subclasses implement the state machine."""
        raise NotImplementedError

    def act(self, sim: TabletopSim) -> np.ndarray:
        """Return the next action for ``sim`` in this expert's action layout."""
        wp = self.plan(sim)
        self.timer += 1
        ref_pos, ref_orn = sim.delta_reference()
        step = wp.position - ref_pos
        norm = float(np.linalg.norm(step))
        if norm > wp.speed:
            step *= wp.speed / norm
        orn = gripper_down(wp.yaw) if wp.orientation is None else wp.orientation
        turn = quat_to_rotvec(quat_multiply(orn, quat_conjugate(ref_orn)))
        angle = float(np.linalg.norm(turn))
        if angle > sim.max_rot_delta:
            turn *= sim.max_rot_delta / angle
        delta = np.concatenate([step, quat_to_euler(quat_from_rotvec(turn)), [wp.grip]])
        self.clean_action = self._layout(delta, ref_pos, ref_orn)
        if self.noise > 0:
            scale = [sim.max_delta] * 3 + [sim.max_rot_delta] * 3
            delta = delta.copy()
            delta[:6] += self.rng.normal(0.0, self.noise * wp.noise_scale, 6) * scale
        return self._layout(delta, ref_pos, ref_orn)

    def _layout(self, delta: np.ndarray, ref_pos: np.ndarray, ref_orn: np.ndarray
                ) -> np.ndarray:
        """Return a ``[dx, dy, dz, droll, dpitch, dyaw, grip]`` step in this expert's layout."""
        if self.action_mode == 'delta':
            return delta
        orn = quat_multiply(quat_from_euler(delta[3:6]), ref_orn)
        return np.concatenate([ref_pos + delta[:3], orn, delta[6:7]])

    @staticmethod
    def reached(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
        """Return whether two points are within a distance."""
        return bool(np.linalg.norm(a - b) < tolerance)


class ReachExpert(Expert):
    """Fly straight to the target marker."""

    def plan(self, sim: TabletopSim) -> Waypoint:
        """Aim at the target, slowing down near it."""
        target = sim.task_state()['target_position']
        dist = float(np.linalg.norm(target - sim.robot_state().ee_position))
        return Waypoint(target, 0.0, OPEN, FAST if dist > 0.05 else SLOW)


class PickAndPlaceExpert(Expert):
    """
    Approach, descend, grasp, lift, carry, lower, release; re-grasp if the object slips.

    Subclasses choose the object, the grasp point and where (if anywhere) to put it.
    """

    grasp_offset = 0.0

    def object_pose(self, sim: TabletopSim) -> tuple[np.ndarray, np.ndarray]:
        """Return the pose of the object to pick."""
        raise NotImplementedError

    def place_position(self, sim: TabletopSim) -> Optional[np.ndarray]:
        """Return the TCP release position, or None to keep holding it up high."""
        raise NotImplementedError

    def after_release(self, sim: TabletopSim) -> None:
        """Decide what to do once the object has been released and the arm retreated."""
        self.goto('done')

    def grasp_point(self, sim: TabletopSim) -> tuple[np.ndarray, float]:
        """Return the TCP grasp position and gripper heading for the object."""
        pos, orn = self.object_pose(sim)
        return pos + rotation_matrix(orn)[:, 2] * self.grasp_offset, square_yaw(orn)

    def holding(self, sim: TabletopSim) -> bool:
        """Return whether the object is still between the fingers."""
        grasp, _ = self.grasp_point(sim)
        state = sim.robot_state()
        return self.reached(grasp, state.ee_position, 0.025) and state.gripper_width > 0.01

    def plan(self, sim: TabletopSim) -> Waypoint:
        """Run one step of the pick-and-place state machine."""
        ee = sim.robot_state().ee_position
        grasp, yaw = self.grasp_point(sim)
        above = grasp + (0.0, 0.0, APPROACH_DZ) + self.approach_offset
        if self.phase == 'start':
            self.goto('approach')
        if self.phase == 'approach':
            if self.reached(ee, above, 0.015):
                self.goto('descend')
            return Waypoint(above, yaw, PREGRASP)
        if self.phase == 'descend':
            if self.reached(ee, grasp, 0.006):
                self.goto('close')
            elif self.timer > 25:
                self.goto('approach')
            return Waypoint(grasp, yaw, PREGRASP, SLOW * 2)
        if self.phase == 'close':
            if self.timer >= 3:
                self.goto('lift')
            return Waypoint(grasp, yaw, CLOSED, SLOW)
        if self.phase in ('lift', 'carry', 'lower') and not self.holding(sim):
            self.goto('recover')
        return self.plan_transport(sim, ee, grasp, yaw)

    def plan_transport(self, sim: TabletopSim, ee: np.ndarray, grasp: np.ndarray,
                       yaw: float) -> Waypoint:
        """Run the phases after the grasp: carry the object and set it down."""
        carry_yaw = yaw_of(sim.delta_reference()[1])
        place = self.place_position(sim)
        if self.phase == 'lift':
            lifted = np.array([ee[0], ee[1], CARRY_Z])
            if ee[2] > CARRY_Z - 0.03 and place is not None:
                self.goto('carry')
            return Waypoint(lifted, carry_yaw, CLOSED)
        if self.phase == 'carry':
            assert place is not None
            over = place + (0.0, 0.0, APPROACH_DZ)
            if self.reached(ee, over, 0.01):
                self.goto('lower')
            return Waypoint(over, carry_yaw, CLOSED)
        if self.phase == 'lower':
            assert place is not None
            if self.reached(ee, place, 0.005) or self.timer > 20:
                self.goto('release')
            return Waypoint(place, carry_yaw, CLOSED, SLOW)
        if self.phase == 'release':
            if self.timer >= 3:
                self.goto('retreat')
            return Waypoint(ee, carry_yaw, OPEN, SLOW)
        if self.phase == 'retreat':
            up = np.array([ee[0], ee[1], CARRY_Z])
            if ee[2] > CARRY_Z - 0.05:
                self.after_release(sim)
            return Waypoint(up, carry_yaw, OPEN)
        if self.phase == 'recover':
            if ee[2] > grasp[2] + APPROACH_DZ - 0.02:
                self.goto('approach')
            return Waypoint(np.array([ee[0], ee[1], grasp[2] + APPROACH_DZ]), carry_yaw, OPEN)
        return Waypoint(ee, carry_yaw, OPEN)


class LiftExpert(PickAndPlaceExpert):
    """Grasp the cube and hold it up at carrying height."""

    def object_pose(self, sim: TabletopSim) -> tuple[np.ndarray, np.ndarray]:
        """Return the cube pose."""
        state = sim.task_state()
        return state['cube_position'], state['cube_orientation']

    def place_position(self, sim: TabletopSim) -> Optional[np.ndarray]:
        """Keep the cube lifted."""
        return None


class PickPlaceExpert(LiftExpert):
    """Carry the cube to the target and set it down there."""

    def place_position(self, sim: TabletopSim) -> Optional[np.ndarray]:
        """Release just above the table at the target centre."""
        target = sim.task_state()['target_position']
        return target + (0.0, 0.0, CUBE_HALF + 0.004)


class StackExpert(PickAndPlaceExpert):
    """Place each cube on the one below it, bottom-up, until the tower is complete."""

    def reset(self) -> None:
        """Start with the second cube (the first one is the base)."""
        super().reset()
        self.index = 1

    def object_pose(self, sim: TabletopSim) -> tuple[np.ndarray, np.ndarray]:
        """Return the pose of the cube being stacked now."""
        state = sim.task_state()
        return state[f'cube{self.index}_position'], state[f'cube{self.index}_orientation']

    def place_position(self, sim: TabletopSim) -> Optional[np.ndarray]:
        """Release just above the top face of the cube below."""
        below = sim.task_state()[f'cube{self.index - 1}_position']
        return below + (0.0, 0.0, 2 * CUBE_HALF + 0.004)

    def plan(self, sim: TabletopSim) -> Waypoint:
        """Pick the lowest cube that is not yet in place before each approach."""
        if self.phase == 'start':
            self.index = sim.task.stages_completed() + 1
        return super().plan(sim)

    def after_release(self, sim: TabletopSim) -> None:
        """Go for the next cube unless the tower is finished."""
        stages = sim.task.stages_completed()
        self.goto('done' if stages >= len(sim.task.cubes) - 1 else 'start')


class PushExpert(Expert):
    """
    Get behind the block on the goal line, then push it along that line.

    A push that tips the block onto the fingers can pitch the hand until the
    wrist sits at its joint limit with the fingertips pressed into the table.
    Backing off from there (away from the goal, up, hand straightened) can keep
    them pinned for tens of steps, so a back-off whose TCP stops rising lifts
    straight up instead, holding the hand as it is, and then re-approaches
    from behind the block.
    """

    #: A back-off that gains less height (m) than this ...
    rise_gain = 0.004
    #: ... in this many steps is stuck.
    stall_steps = 4

    def goto(self, phase: str) -> None:
        """Enter a phase and forget the height the previous one reached."""
        super().goto(phase)
        self.highest = -float('inf')
        self.stalled = 0

    def rising(self, height: float) -> bool:
        """Return whether the TCP has climbed ``rise_gain`` within the last ``stall_steps``."""
        if height > self.highest + self.rise_gain:
            self.highest, self.stalled = height, 0
        else:
            self.stalled += 1
        return self.stalled < self.stall_steps

    def plan(self, sim: TabletopSim) -> Waypoint:
        """Run one step of the pushing state machine."""
        state, robot = sim.task_state(), sim.robot_state()
        ee = robot.ee_position
        block, goal = state['block_position'][:2], state['goal_position'][:2]
        u = goal - block
        u /= max(float(np.linalg.norm(u)), 1e-6)
        behind = block - u * (BLOCK_HALF + 0.035)
        heading = wrap(float(np.arctan2(u[1], u[0])), np.pi / 2)
        offset = ee[:2] - block
        along = float(np.dot(offset, u))
        lateral = abs(float(u[0] * offset[1] - u[1] * offset[0]))
        if self.phase == 'start':
            self.goto('above')
        if self.phase == 'above':
            if self.reached(ee[:2], behind, 0.01):
                self.goto('down')
            return Waypoint(np.array([*behind, 0.08]), heading, CLOSED)
        if self.phase == 'down':
            if ee[2] < 0.03:
                self.goto('push')
            return Waypoint(np.array([*behind, 0.02]), heading, CLOSED, SLOW * 2)
        if self.phase == 'push':
            if lateral > 0.015 or along > -BLOCK_HALF:
                self.goto('up')
            end = goal - u * (BLOCK_HALF + 0.012)
            return Waypoint(np.array([*end, 0.02]), heading, CLOSED, SLOW)
        if ee[2] > 0.07:
            self.goto('above')
        elif self.phase == 'up' and not self.rising(float(ee[2])):
            self.goto('rise')
        if self.phase == 'rise':
            # Moving sideways or straightening the hand keeps jammed fingertips pressed into
            # the table; rising with the hand as it is frees them within a few steps.
            return Waypoint(np.array([ee[0], ee[1], 0.08]), heading, CLOSED,
                            orientation=robot.ee_orientation)
        return Waypoint(np.array([ee[0] - u[0] * 0.02, ee[1] - u[1] * 0.02, 0.08]),
                        heading, CLOSED)


class PegInsertExpert(LiftExpert):
    """Grasp the peg near its top, hover it over the hole, align, then insert slowly."""

    grasp_offset = PEG_HALF_HEIGHT - 0.02
    hover = 0.012
    tolerance = 0.0012

    def object_pose(self, sim: TabletopSim) -> tuple[np.ndarray, np.ndarray]:
        """Return the peg pose."""
        state = sim.task_state()
        return state['peg_position'], state['peg_orientation']

    def place_position(self, sim: TabletopSim) -> Optional[np.ndarray]:
        """Return a non-None marker so the lift phase hands over to the insertion."""
        return sim.task_state()['hole_position']

    def plan_transport(self, sim: TabletopSim, ee: np.ndarray, grasp: np.ndarray,
                       yaw: float) -> Waypoint:
        """Replace carry/lower/release by align and insert, steering the peg tip."""
        if self.phase not in ('carry', 'lower'):
            return super().plan_transport(sim, ee, grasp, yaw)
        state = sim.task_state()
        peg_pos, peg_orn = state['peg_position'], state['peg_orientation']
        tip = peg_pos - rotation_matrix(peg_orn)[:, 2] * PEG_HALF_HEIGHT
        hole = state['hole_position']
        ref_pos, ref_orn = sim.delta_reference()
        turn = wrap(yaw_of(state['hole_orientation']) - yaw_of(peg_orn), np.pi / 2)
        goal_yaw = yaw_of(ref_orn) + turn
        xy_error = hole[:2] - tip[:2]
        offset = float(np.linalg.norm(xy_error))
        if self.phase == 'carry':
            depth = hole[2] + self.hover
            aligned = offset < self.tolerance and abs(turn) < 0.015
            if aligned and abs(tip[2] - depth) < 0.004:
                self.goto('lower')
            speed = FAST if offset > 0.02 else SLOW / 3
        else:
            depth = 0.004
            if offset > 0.003 and tip[2] > hole[2] - 0.005:
                self.goto('carry')
            speed = SLOW / 3
        goal = ref_pos + np.array([xy_error[0], xy_error[1], depth - tip[2]])
        if self.phase == 'carry' and offset > 0.01:
            goal[2] = max(goal[2], ref_pos[2])
        return Waypoint(goal, goal_yaw, CLOSED, speed, FINE_NOISE if offset < 0.01 else 1.0)


EXPERTS: dict[str, type[Expert]] = {
    'reach': ReachExpert,
    'lift': LiftExpert,
    'push': PushExpert,
    'pick_place': PickPlaceExpert,
    'stack': StackExpert,
    'stack3': StackExpert,
    'peg_insert': PegInsertExpert,
}


def make_expert(task_name: str, action_mode: str = 'delta', noise: float = 0.0,
                rng: Optional[np.random.Generator] = None,
                approach_jitter: float = 0.0) -> Expert:
    """Return the scripted expert for a task, or raise ValueError listing the tasks."""
    if task_name not in EXPERTS:
        raise ValueError(f'no expert for task {task_name!r}; known tasks: {", ".join(EXPERTS)}')
    return EXPERTS[task_name](action_mode, noise, rng, approach_jitter)
