"""
Gymnasium environment over ``TabletopSim`` and its registered ids.

Actions: with ``action_mode='delta'`` (default) the action space is the
normalised box [-1, 1]^7 ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``: the
first six are scaled by the simulator's per-step limits (``max_delta`` metres,
``max_rot_delta`` radians) and ``gripper`` maps -1 -> closed, +1 -> open. With
``action_mode='absolute'`` the space is the simulator's physical 8-value pose
layout (see ``scene``), unchanged.

Observations (``obs_mode``):

* ``'state'``: float32 vector: TCP position (3), TCP quaternion xyzw (4),
  gripper width (1), arm joint positions (7), then the task's privileged state
  flattened in its key order (fixed size per task).
* ``'image'``: Dict with one uint8 HxWx3 image per camera view (key = view
  name), plus ``'<view>_depth'`` float32 HxW metres when ``depth=True``.
* ``'state+image'``: the image Dict plus ``'state'``.

Reward is the sparse task reward; an episode terminates on success and is
truncated at the task's (or config's) ``max_episode_steps``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

import gymnasium as gym
from gymnasium import spaces
import numpy as np

from .config import SimConfig, TASK_NAMES
from .scene import DEFAULT_MAX_DELTA, DEFAULT_MAX_ROT_DELTA, TabletopSim

OBS_MODES = ('state', 'image', 'state+image')
PROPRIO_SIZE = 15
# Poses (metres, quaternions) and joint angles (radians) all stay well inside this.
STATE_BOUND = 10.0
ENV_IDS = {name: 'VisualRL/' + ''.join(part.capitalize() for part in name.split('_')) + '-v0'
           for name in TASK_NAMES}


def delta_scale(max_delta: float = DEFAULT_MAX_DELTA,
                max_rot_delta: float = DEFAULT_MAX_ROT_DELTA) -> np.ndarray:
    """Return the physical size of a normalised delta action's +-1 per value."""
    return np.array([max_delta] * 3 + [max_rot_delta] * 3 + [0.5])


def delta_to_physical(action: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Map a normalised delta action in [-1, 1]^7 to physical units (gripper 0..1)."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape[-1:] != (7,):
        raise ValueError(f'action must have 7 values, got shape {a.shape}')
    out = np.minimum(np.maximum(a, -1.0), 1.0) * scale
    out[..., 6] += 0.5
    return out


def physical_to_delta(physical: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Map physical delta actions (an expert's, a bag's) into [-1, 1]^7, clipped."""
    p = np.array(physical, dtype=np.float64)
    p[..., 6] -= 0.5
    return np.clip(p / scale, -1.0, 1.0).astype(np.float32)


class VisualRLEnv(gym.Env):
    """One Panda tabletop task as a gymnasium environment."""

    metadata = {'render_modes': ['rgb_array'], 'render_fps': 10}

    def __init__(self, task: str = 'lift', obs_mode: str = 'state',
                 config: Optional[SimConfig] = None, render_mode: Optional[str] = None,
                 depth: bool = False):
        """Create the simulator; ``config.task`` is overridden by ``task``."""
        if obs_mode not in OBS_MODES:
            raise ValueError(f'obs_mode must be one of {OBS_MODES}, got {obs_mode!r}')
        if render_mode not in (None, 'rgb_array'):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = replace(config or SimConfig(task=task), task=task)
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.depth = depth
        self.metadata = {**self.metadata, 'render_fps': self.config.control_hz}
        self.sim = TabletopSim(self.config)
        self.views = [c.name for c in self.config.cameras] if obs_mode != 'state' else []
        if obs_mode != 'state' and not self.views:
            raise ValueError(f'obs_mode {obs_mode!r} needs at least one camera in the config')
        self.action_space = self._action_space()
        self._action_scale = delta_scale(self.sim.max_delta, self.sim.max_rot_delta)
        self.observation_space = self._observation_space()

    @property
    def task(self) -> str:
        """Return the task name."""
        return self.config.task

    def _action_space(self) -> spaces.Box:
        """Return the normalised delta box or the physical absolute box."""
        if self.config.action_mode == 'delta':
            return spaces.Box(-1.0, 1.0, (7,), np.float32)
        low, high = self.sim.action_space_bounds()
        return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

    def _observation_space(self) -> spaces.Space:
        """Return the observation space for the obs mode (state size read from the task)."""
        size = PROPRIO_SIZE + sum(v.size for v in self.sim.task_state().values())
        state = spaces.Box(-STATE_BOUND, STATE_BOUND, (size,), np.float32)
        if self.obs_mode == 'state':
            return state
        items: dict[str, spaces.Space] = {}
        for spec in self.config.cameras:
            items[spec.name] = spaces.Box(0, 255, (spec.height, spec.width, 3), np.uint8)
            if self.depth:
                items[f'{spec.name}_depth'] = spaces.Box(
                    0.0, spec.far, (spec.height, spec.width), np.float32)
        if self.obs_mode == 'state+image':
            items['state'] = state
        return spaces.Dict(items)

    def _state_vector(self) -> np.ndarray:
        """Return proprioception followed by the flattened privileged task state."""
        robot = self.sim.robot_state()
        task = [v.reshape(-1) for v in self.sim.task_state().values()]
        # Cast while concatenating: the same float64 -> float32 rounding as ``astype``.
        return np.concatenate((robot.ee_position, robot.ee_orientation, (robot.gripper_width,),
                               robot.joint_positions[:7], *task),
                              dtype=np.float32, casting='same_kind')

    def _observation(self) -> Any:
        """Assemble the observation for the obs mode, rendering only what it needs."""
        if self.obs_mode == 'state':
            return self._state_vector()
        obs: dict[str, np.ndarray] = {}
        for name, frame in self.sim.render(self.views).items():
            obs[name] = frame.rgb
            if self.depth:
                obs[f'{name}_depth'] = np.minimum(frame.depth, self.sim.cameras[name].spec.far)
        if self.obs_mode == 'state+image':
            obs['state'] = self._state_vector()
        return obs

    def _physical_action(self, action: np.ndarray) -> np.ndarray:
        """Map a normalised delta action to the simulator's physical units."""
        if self.config.action_mode != 'delta':
            return np.asarray(action, dtype=np.float64)
        return delta_to_physical(action, self._action_scale)

    def normalize_action(self, physical: np.ndarray) -> np.ndarray:
        """Map a physical delta action (e.g. from an expert) into this env's action space."""
        if self.config.action_mode != 'delta':
            return np.asarray(physical, dtype=np.float32)
        return physical_to_delta(physical, self._action_scale)

    def reset(self, *, seed: Optional[int] = None,
              options: Optional[dict[str, Any]] = None) -> tuple[Any, dict[str, Any]]:
        """Reset the episode; the same seed gives the same initial state."""
        super().reset(seed=seed)
        episode_seed = seed if seed is not None else int(self.np_random.integers(2**31))
        self.sim.reset(seed=episode_seed)
        return self._observation(), {'success': False, 'instruction': self.sim.instruction}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Advance one control step."""
        result = self.sim.step(self._physical_action(action))
        return self._observation(), result.reward, result.terminated, result.truncated, result.info

    def render(self) -> Optional[np.ndarray]:
        """Return the front view (or the first configured view) as an RGB array."""
        if self.render_mode != 'rgb_array':
            return None
        name = 'front' if 'front' in self.sim.cameras else next(iter(self.sim.cameras))
        return self.sim.render([name])[name].rgb

    def close(self) -> None:
        """Release the simulator."""
        self.sim.close()


def register_envs() -> None:
    """Register one gymnasium id per task (``VisualRL/Lift-v0`` ...); safe to call twice."""
    for name, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point='visual_rl_stack.sim.gym_env:VisualRLEnv',
                         kwargs={'task': name})
