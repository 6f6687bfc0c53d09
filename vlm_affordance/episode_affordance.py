"""
One episode of KAGI without ROS: frames and instruction in, a plan, then a reward per step.

At episode start the views and the instruction become a visual prompt
(:func:`.prompting.build_prompt`), the backend is asked through
:class:`.query.AffordanceQuery`, the keypoints are lifted to world waypoints
(:func:`.lifting.lift_keypoints`) and a :class:`.dense_reward.WaypointProgress`
tracker turns every later end-effector position into a reward. Nothing here
raises for bad input: a backend that cannot be opened, an empty instruction,
a missing view, a reply off the image or depth without readings give a
:class:`Plan` without waypoints whose diagnostic says why, and the reward is
then the sparse one alone. The ROS node, the residual RL reward and the bag
relabelling all drive this class.

A plan may arrive after the episode's first steps (the node queries on a
thread of its own); the tracker is then replayed over the positions seen so
far, so progress is the same as if the plan had been there from the start.
"""

from dataclasses import dataclass, field
from pathlib import Path
import time
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from visual_rl_stack.sim.cameras import CameraFrame

from .affordance import AffordanceBackend
from .dense_reward import RewardSettings, WaypointProgress
from .frames import check_views
from .lifting import lift_keypoints, LiftSettings
from .prompting import build_prompt
from .query import AffordanceQuery, QueryResult

#: Diagnostic levels of a plan, as diagnostic_msgs names them.
OK, WARN, ERROR = 'ok', 'warn', 'error'


@dataclass(frozen=True)
class Plan:
    """The outcome of one query: waypoints (``Kx3``, world) or None, and why."""

    instruction: str
    waypoints: Optional[np.ndarray]
    diagnostic: str
    level: str
    points: Mapping[str, np.ndarray] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)
    latency_s: float = 0.0
    result: Optional[QueryResult] = None

    @property
    def ok(self) -> bool:
        """Return whether the plan has waypoints (a dense reward)."""
        return self.waypoints is not None


class EpisodeAffordance:
    """Holds the query and, per episode, the instruction, plan and progress tracker."""

    def __init__(self, open_backend: Callable[[], AffordanceBackend], backend_name: str,
                 views: Sequence[str] = ('front', 'side'),
                 reward: RewardSettings = RewardSettings(),
                 lift: LiftSettings = LiftSettings(), max_attempts: int = 3,
                 log_path: Optional[Path] = None):
        """Remember how to open the backend (opened on the first query) and the settings."""
        if not views:
            raise ValueError('EpisodeAffordance needs at least one view')
        self.open_backend = open_backend
        self.backend_name = backend_name
        self.views = tuple(views)
        self.reward = reward
        self.lift = lift
        self.max_attempts = max_attempts
        self.log_path = log_path
        self._query: Optional[AffordanceQuery] = None
        self._open_error = ''
        self.new_episode('')

    # Backend ------------------------------------------------------------------------------

    def query(self) -> Optional[AffordanceQuery]:
        """Return the query, opening the backend once; None (see ``open_error``) if that fails."""
        if self._query is None and not self._open_error:
            try:
                self._query = AffordanceQuery(self.open_backend(), self.max_attempts,
                                              self.log_path)
            except Exception as error:  # noqa: BLE001 - a missing model must not stop the robot
                self._open_error = (f'backend {self.backend_name!r} cannot be opened: '
                                    f'{type(error).__name__}: {error}')
        return self._query

    @property
    def open_error(self) -> str:
        """Return why the backend could not be opened ('' if it was, or was not tried)."""
        return self._open_error

    def retry_open(self) -> None:
        """Forget a failed opening, so that the next query tries again."""
        self._open_error = ''

    # Planning -----------------------------------------------------------------------------

    def make_plan(self, frames: Mapping[str, CameraFrame], instruction: str,
                  episode_id: Optional[str] = None) -> Plan:
        """Return the plan for these frames (cached per ``episode_id``); never raises."""
        start = time.perf_counter()
        details = {'backend': self.backend_name, 'views': ', '.join(self.views)}

        def refused(level: str, why: str, result: Optional[QueryResult] = None) -> Plan:
            return Plan(instruction, None, f'sparse only: {why}', level, details=details,
                        latency_s=time.perf_counter() - start, result=result)

        query = self.query()
        if query is None:
            return refused(ERROR, self._open_error)
        if not (instruction or '').strip():
            return refused(WARN, 'the instruction is empty')
        missing = check_views(frames, self.views)
        if missing:
            return refused(WARN, f'no frames of views {missing} (have {sorted(frames)})')
        chosen = {view: frames[view] for view in self.views}
        try:
            prompt = build_prompt(chosen, instruction)
        except Exception as error:  # noqa: BLE001 - a bad frame must not stop training
            return refused(WARN, f'cannot build the prompt: {type(error).__name__}: {error}')
        details['candidates'] = str(len(prompt.candidates))
        result = query(prompt, episode_id)
        details.update(attempts=str(len(result.attempts)), cached=str(result.cached),
                       query_latency_s=f'{result.latency_s:.3f}')
        if result.replies:
            details['last_reply'] = result.replies[-1][:300]
        if not result.ok:
            return refused(WARN, result.diagnostic, result)
        lifted = lift_keypoints(result.affordance.keypoints.values(), chosen, self.lift)
        details.update({f'keypoint {name}': why for name, why in lifted.diagnostics.items()})
        if lifted.waypoints is None:
            return refused(WARN, lifted.diagnostic, result)
        return Plan(instruction, lifted.waypoints, f'dense: {len(lifted.waypoints)} waypoints',
                    OK, lifted.points, details, time.perf_counter() - start, result)

    # Episode ------------------------------------------------------------------------------

    def new_episode(self, instruction: str, episode_id: Optional[str] = None) -> None:
        """Start an episode: no plan yet, no positions seen."""
        self.instruction = instruction
        self.episode_id = episode_id
        self.plan: Optional[Plan] = None
        self.tracker: Optional[WaypointProgress] = None
        self._positions: list[np.ndarray] = []

    def plan_episode(self, frames: Mapping[str, CameraFrame]) -> Plan:
        """Plan the current episode from ``frames`` and install the plan."""
        plan = self.make_plan(frames, self.instruction, self.episode_id)
        self.install(plan)
        return plan

    def install(self, plan: Plan) -> None:
        """Use ``plan`` for the rest of the episode, replaying the positions seen so far."""
        self.plan = plan
        self.tracker = WaypointProgress(plan.waypoints, self.reward, missing=plan.diagnostic)
        if self._positions:
            self.tracker.reset(self._positions[0])
            for position in self._positions[1:]:
                self.tracker.step(position)

    def step(self, ee_position: Sequence[float], sparse: float = 0.0) -> float:
        """
        Return the reward of reaching ``ee_position`` (the first call: the episode's start).

        The start pays the sparse reward alone: it ends no transition.
        """
        position = np.asarray(ee_position, dtype=np.float64)
        first = not self._positions
        self._positions.append(position)
        if self.tracker is None:
            return float(sparse)
        if first:
            self.tracker.reset(position)
            return float(sparse)
        return self.tracker.step(position, sparse=sparse)

    @property
    def dense(self) -> float:
        """Return the dense term of the latest step (0 without a plan)."""
        return 0.0 if self.tracker is None or not self.tracker.active else self.tracker.dense

    @property
    def level(self) -> float:
        """Return the progress value phi of the latest step (0 without a plan)."""
        return 0.0 if self.tracker is None or not self.tracker.active else self.tracker.phi

    @property
    def progress(self) -> int:
        """Return how many waypoints have been reached."""
        return 0 if self.tracker is None else self.tracker.progress
