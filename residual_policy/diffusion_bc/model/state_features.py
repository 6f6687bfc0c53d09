"""
Derived state features computed inside the policy from the raw state vector.

Demonstrations show the expert's feedback law only through the states it
visited: with 100 demonstrations a network given absolute positions and
quaternions learns the average motion but barely the correction that depends
on where the object is *relative to the gripper*. The quantities the experts
act on are differences of positions and headings, and a square object's
heading only matters modulo 90 degrees, which a quaternion encodes through a
sawtooth a small network learns poorly. The ``relative`` feature set appends
those quantities explicitly:

- every pairwise difference of the ``*_position`` fields (object minus
  gripper, target minus object, ...);
- per ``*_orientation`` field, the heading ``yaw`` as cos/sin of ``yaw`` and
  of ``4 yaw`` (the latter is invariant to a square object's symmetry);
- per task orientation field, cos/sin of ``4 (yaw - gripper yaw)``: the
  heading error modulo 90 degrees that the grasp depends on.

The ``frames`` set adds, to ``relative``, every position seen in the table
plane from each other position facing a third: for an ordered pair ``(a, b)``
and each further position ``c``, the components of ``c - a`` along and across
the unit direction from ``a`` to ``b``, plus each pair's planar distance. For
pushing that is the gripper's offset along and beside the block-to-goal line,
the quantity a pushing expert's feedback acts on and a product of normalised
differences that a small network otherwise has to learn.

The ``invariant`` set keeps only what does not change when the whole scene is
shifted across the table: those differences and headings, every position's
height, and the fields that are neither positions, orientations nor joint
angles (the gripper opening). The experts act the same wherever the scene
is, so a policy that cannot see absolute table positions (nor the joint
angles that encode them) has one situation to learn where the raw state has
one per scene placement.

Features are pure functions of the raw state, computed in torch so training,
batched RL and single-step inference share one definition; the raw state
stays the policy's input contract (``state_dim``) and the normaliser is fitted
on the feature vector.
"""

from itertools import combinations
from typing import Sequence

import torch
from torch import nn

from .config import FEATURE_SETS

JOINT_FIELD = 'joint_positions'
GRIPPER_POSITION = 'ee_position'
GRIPPER_ORIENTATION = 'ee_orientation'
SYMMETRY_ORDER = 4
#: Planar distance (m) below which a facing direction fades to zero instead of
#: swinging arbitrarily (e.g. the gripper over the object it holds).
FRAME_SOFTENING = 1e-3


def quaternion_yaw(q: torch.Tensor) -> torch.Tensor:
    """Return the heading (rotation about world z) of ``(..., 4)`` xyzw quaternions."""
    x, y, z, w = q.unbind(-1)
    return torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def heading_features(yaw: torch.Tensor, orders: Sequence[int]) -> torch.Tensor:
    """Return ``(..., 2 len(orders))`` cos/sin of ``k yaw`` for each order ``k``."""
    return torch.stack([f(k * yaw) for k in orders for f in (torch.cos, torch.sin)], dim=-1)


class StateFeatures(nn.Module):
    """Map raw ``(..., state_dim)`` states to ``(..., output_dim)`` features (module doc)."""

    def __init__(self, state_labels: Sequence[Sequence], feature_set: str = 'raw'):
        super().__init__()
        if feature_set not in FEATURE_SETS:
            raise ValueError(f'state_features must be one of {FEATURE_SETS}, '
                             f'got {feature_set!r}')
        self.feature_set = feature_set
        self.slices: dict[str, slice] = {}
        start = 0
        for name, size in state_labels:
            self.slices[str(name)] = slice(start, start + int(size))
            start += int(size)
        self.state_dim = start
        self.positions = [n for n, s in self.slices.items()
                          if n.endswith('_position') and s.stop - s.start == 3]
        self.orientations = [n for n, s in self.slices.items()
                             if n.endswith('_orientation') and s.stop - s.start == 4]
        if feature_set != 'raw' and (GRIPPER_POSITION not in self.positions or
                                     GRIPPER_ORIENTATION not in self.orientations):
            raise ValueError(f'state_features {feature_set!r} needs a state layout with '
                             f'{GRIPPER_POSITION} and {GRIPPER_ORIENTATION}; got '
                             f"{list(self.slices)} (pass the run's state_labels)")
        self.kept = self._kept_fields()
        kept_dim = sum(self.slices[n].stop - self.slices[n].start for n in self.kept)
        self.output_dim = kept_dim + len(self.heights) + self._derived_dim()

    @property
    def heights(self) -> list[str]:
        """Return the positions whose height the invariant set keeps."""
        return self.positions if self.feature_set == 'invariant' else []

    def _kept_fields(self) -> list[str]:
        """Return the raw fields passed through unchanged, in layout order."""
        if self.feature_set != 'invariant':
            return list(self.slices)
        dropped = {*self.positions, *self.orientations, JOINT_FIELD}
        return [n for n in self.slices if n not in dropped]

    def _derived_dim(self) -> int:
        """Return how many differences and heading features the feature set derives."""
        if self.feature_set == 'raw':
            return 0
        n = len(self.positions)
        pairs = n * (n - 1) // 2
        frames = pairs + 2 * n * (n - 1) * (n - 2) if self.feature_set == 'frames' else 0
        return 3 * pairs + 4 * len(self.orientations) + 2 * (len(self.orientations) - 1) + frames

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Return the kept raw fields (and heights), then the derived features."""
        if state.shape[-1] != self.state_dim:
            raise ValueError(f'state has {state.shape[-1]} dims, the layout has '
                             f'{self.state_dim}')
        if self.feature_set == 'raw':
            return state
        kept = [state[..., self.slices[n]] for n in self.kept]
        kept += [state[..., self.slices[n].start + 2, None] for n in self.heights]
        extra = [state[..., self.slices[b]] - state[..., self.slices[a]]
                 for a, b in combinations(self.positions, 2)]
        yaws = {n: quaternion_yaw(state[..., self.slices[n]]) for n in self.orientations}
        extra += [heading_features(yaw, (1, SYMMETRY_ORDER)) for yaw in yaws.values()]
        gripper_yaw = yaws[GRIPPER_ORIENTATION]
        extra += [heading_features(yaw - gripper_yaw, (SYMMETRY_ORDER,))
                  for name, yaw in yaws.items() if name != GRIPPER_ORIENTATION]
        if self.feature_set == 'frames':
            extra.append(self._frame_features(state))
        return torch.cat([*kept, *extra], dim=-1)

    def _frame_features(self, state: torch.Tensor) -> torch.Tensor:
        """Return planar pair distances, then each third position in each facing frame."""
        xy = {n: state[..., self.slices[n].start:self.slices[n].start + 2]
              for n in self.positions}
        features = [torch.linalg.vector_norm(xy[b] - xy[a], dim=-1)
                    for a, b in combinations(self.positions, 2)]
        for a in self.positions:
            for b in self.positions:
                if b == a:
                    continue
                facing = xy[b] - xy[a]
                length = torch.sqrt((facing ** 2).sum(-1, keepdim=True) + FRAME_SOFTENING ** 2)
                ux, uy = (facing / length).unbind(-1)
                for c in self.positions:
                    if c in (a, b):
                        continue
                    dx, dy = (xy[c] - xy[a]).unbind(-1)
                    features += [ux * dx + uy * dy, ux * dy - uy * dx]
        return torch.stack(features, dim=-1)
