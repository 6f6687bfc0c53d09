"""
Policies as one interface: the :class:`Policy` protocol and the registry of policy kinds.

Everything that runs a trained policy (``vrl eval``, the policy node, the
demo, replay evaluation) opens it with :func:`open_policy` from a shipped
model's name or a run folder, and uses only the :class:`Policy` protocol. The
run's config says its ``kind`` (:func:`.run_layout.run_kind`); the registry
maps each kind to the function that opens it.

Kinds are registered by import path (``'module:function'``), loaded on first
use, as gymnasium registers environments: the learners depend on this shared
base, so the base cannot import them, and a new method adds one line here (or
calls :func:`register_policy_kind`) instead of editing every caller.
"""

from dataclasses import dataclass
import importlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol, runtime_checkable

import numpy as np
from visual_rl_stack.sim.scene import TabletopSim

from .checkpoints import WEIGHTS_FILE
from .run_layout import (BC_KIND, CHECKPOINT, PathLike, RESFIT_KIND, RESIDUAL_KIND, RUN_CONFIG,
                         run_kind, WORLD_MODEL_KIND)
from .shipped_models import resolve_policy


@dataclass(frozen=True)
class PolicyOptions:
    """
    How to run a policy, whatever its kind; None keeps what the run was trained with.

    ``num_inference_steps`` overrides the diffusion step count, ``action_steps``
    the executed steps per chunk, ``warm_start`` (0, 1] starts each chunk from
    the previous one, ``noise_scale`` >= 0 scales the initial noise; ``seed``
    seeds the policy's sampling. The policy node takes them as ROS parameters
    (:meth:`to_ros_parameters`), where 0 (-1 for ``noise_scale``) stands for None.
    """

    device: str = 'auto'
    num_inference_steps: Optional[int] = None
    seed: int = 0
    action_steps: Optional[int] = None
    warm_start: Optional[float] = None
    noise_scale: Optional[float] = None

    def to_ros_parameters(self) -> dict[str, Any]:
        """Return the policy node's parameters for these options (it reseeds per episode)."""
        return {'device': self.device,
                'inference_steps': int(self.num_inference_steps or 0),
                'action_steps': int(self.action_steps or 0),
                'warm_start': float(self.warm_start or 0.0),
                'noise_scale': -1.0 if self.noise_scale is None else float(self.noise_scale)}

    @classmethod
    def from_ros_parameters(cls, values: Mapping[str, Any]) -> 'PolicyOptions':
        """Return the options the policy node's parameter ``values`` choose (seed 0)."""
        return cls(device=values['device'],
                   num_inference_steps=values['inference_steps'] or None,
                   action_steps=values['action_steps'] or None,
                   warm_start=values['warm_start'] or None,
                   noise_scale=values['noise_scale'] if values['noise_scale'] >= 0 else None)


@runtime_checkable
class Policy(Protocol):
    """
    A trained policy, one action per control step from the observation contract.

    Observations are the raw state vector of
    :func:`visual_rl_stack.core.observation.state_fields` and, for
    :attr:`views`, ``(H, W, 3)`` uint8 images at :attr:`image_size`; actions
    are in the simulator's layout for :attr:`action_mode`.
    """

    kind: str
    checkpoint: Path
    device: object

    @property
    def uses_images(self) -> bool:
        """Return whether the policy looks at camera images."""

    @property
    def views(self) -> tuple[str, ...]:
        """Return the camera views the policy expects, in order (empty without images)."""

    @property
    def image_size(self) -> tuple[int, int]:
        """Return the ``(height, width)`` the policy's images must have."""

    @property
    def task(self) -> Optional[str]:
        """Return the task the policy was trained on (None when unknown)."""

    @property
    def action_mode(self) -> Optional[str]:
        """Return the action mode the policy outputs (None when unknown)."""

    @property
    def action_dim(self) -> int:
        """Return the size of one action."""

    @property
    def state_labels(self) -> Optional[list[tuple[str, int]]]:
        """Return the state layout ``[(label, size), ...]`` it was trained on (None: unknown)."""

    def check_compatible(self, task: str, action_mode: str) -> None:
        """Raise ValueError when the policy was trained for another task or action mode."""

    def reseed(self, seed: int) -> None:
        """Restart the policy's sampling noise from ``seed``."""

    def reset(self) -> None:
        """Forget the previous episode (call at episode start)."""

    def act_from_observation(self, state: np.ndarray,
                             images: Optional[dict[str, np.ndarray]] = None) -> np.ndarray:
        """Return the action for this control step (float64, simulator layout)."""

    def report(self) -> dict:
        """Return what an evaluation result records about the policy (latency, device, ...)."""


class Controller(Protocol):
    """What the episode loop drives: a reset and an action per step of a live simulator."""

    def reset(self) -> None:
        """Forget the previous episode."""

    def act(self, sim: TabletopSim) -> np.ndarray:
        """Return the next action in the simulator's action layout."""


Opener = Callable[[Path, PolicyOptions], Policy]
#: Policy kind -> ``'module:function'`` opening a run folder of that kind.
POLICY_KINDS: dict[str, str] = {
    BC_KIND: 'visual_rl_stack.residual_policy.diffusion_bc.runner:open_bc_policy',
    RESIDUAL_KIND: 'visual_rl_stack.residual_policy.resip.agent:open_residual_policy',
    RESFIT_KIND: 'visual_rl_stack.residual_policy.resfit.agent:open_resfit_policy',
    WORLD_MODEL_KIND: 'visual_rl_stack.world_model.behavior.agent:open_horizon_policy',
}

#: How reports name each kind.
KIND_LABELS = {BC_KIND: 'BC', RESIDUAL_KIND: 'BC + residual',
               RESFIT_KIND: 'BC + off-policy residual',
               WORLD_MODEL_KIND: 'world-model agent'}


def register_policy_kind(kind: str, entry_point: str, label: Optional[str] = None) -> None:
    """Register (or replace) the ``'module:function'`` opening runs of ``kind``."""
    if ':' not in entry_point:
        raise ValueError(f'entry point {entry_point!r} must read "module:function"')
    POLICY_KINDS[kind] = entry_point
    KIND_LABELS[kind] = label or kind


def policy_opener(kind: str) -> Opener:
    """Return the opener registered for ``kind``; ValueError naming the known kinds."""
    if kind not in POLICY_KINDS:
        raise ValueError(f'unknown policy kind {kind!r}; known kinds: '
                         f'{", ".join(sorted(POLICY_KINDS))}')
    module_name, function = POLICY_KINDS[kind].split(':')
    return getattr(importlib.import_module(module_name), function)


def resolve_run(run_or_checkpoint: PathLike) -> tuple[Path, Optional[dict]]:
    """
    Return ``(checkpoint folder, run config or None)`` for a policy.

    The policy is a shipped model's name (see :mod:`visual_rl_stack.core.shipped_models`),
    a run folder (``checkpoint/`` and ``config.json``) or a checkpoint folder,
    which finds its run config in the parent folder when there is one. Raises
    ValueError for a name or path that is none of these.
    """
    path = resolve_policy(run_or_checkpoint)
    if (path / CHECKPOINT).is_dir():
        checkpoint, run_dir = path / CHECKPOINT, path
    elif (path / WEIGHTS_FILE).is_file():
        checkpoint, run_dir = path, path.parent
    else:
        raise ValueError(f'{path} is not a BC run folder (no {CHECKPOINT}/ inside) nor a '
                         'policy checkpoint folder')
    config_path = run_dir / RUN_CONFIG
    run_config = json.loads(config_path.read_text()) if config_path.is_file() else None
    return checkpoint, run_config


def policy_kind(name_or_path: PathLike) -> str:
    """
    Return the kind of a policy source: a run folder's, or ``bc`` for a bare checkpoint.

    A run folder (``config.json`` beside ``checkpoint/``) names its kind, or
    shows it by its layout (:func:`.run_layout.run_kind`); a checkpoint folder
    on its own holds a diffusion policy.
    """
    path = resolve_policy(name_or_path)
    if not (path / CHECKPOINT).is_dir():
        return BC_KIND
    config_path = path / RUN_CONFIG
    run_config = json.loads(config_path.read_text()) if config_path.is_file() else None
    return run_kind(path, run_config)


def kind_label(kind: str) -> str:
    """Return how reports name a policy kind (``BC + residual``); unknown kinds by name."""
    return KIND_LABELS.get(kind, kind)


def open_policy(name_or_path: PathLike, options: Optional[PolicyOptions] = None) -> Policy:
    """
    Open a shipped model name, a run folder or a checkpoint folder as a :class:`Policy`.

    Raises ValueError for a source that is none of these or of an unknown kind.
    """
    return policy_opener(policy_kind(name_or_path))(resolve_policy(name_or_path),
                                                    options or PolicyOptions())
