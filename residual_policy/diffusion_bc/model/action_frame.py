"""
Actions expressed in a planar frame that faces from one object to another.

A scripted pusher does the same thing in every scene once its motion is seen
from the block facing the goal: come up behind, push along +x, correct along
y. In world coordinates the same law is rotated by the block-to-goal heading,
so a network trained on 100 demonstrations at random headings must learn a
product of that heading's cosine and sine with every correction, and its
sideways corrections come out blurred. With an action frame ``(a, b)`` the
policy learns and samples delta actions in the frame whose x axis points from
position ``a`` to position ``b`` in the table plane (the frame of the newest
observation step of each window, held for the whole chunk), and rotates them
back to world coordinates before they leave the policy.

Only delta actions ``[dx, dy, dz, droll, dpitch, dyaw, grip]`` have a planar
part that rotates with the frame: the translation ``(dx, dy)`` and, to first
order, the tilt ``(droll, dpitch)``; height, heading change and gripper stay.
The action normaliser is fitted on the actions as seen in each step's frame,
so residual RL turns the base's world action into the frame at the state it
is taken in before normalising it, adds its correction there, and turns the
sum back (``resip.agent.NormalisedSpace``): corrections are then along and
across the same line at every heading, like the base's actions.
"""

from typing import Sequence

import torch

from .config import action_frame_offsets

#: Index pairs of the planar vector parts of a delta action.
PLANAR_PAIRS = ((0, 1), (3, 4))
#: Planar distance (m) below which the facing direction falls back to world x.
FRAME_SOFTENING = 1e-3


class ActionFrame:
    """Rotate delta actions between world coordinates and an object-to-object frame."""

    def __init__(self, state_labels: Sequence[Sequence], frame: Sequence[str],
                 action_dim: int):
        """Find the two position fields ``frame = (a, b)`` in the raw state layout."""
        self.origin, self.target = action_frame_offsets(state_labels, frame, action_dim)

    def heading(self, state: torch.Tensor) -> torch.Tensor:
        """Return the frame's heading ``(...)`` (radians) for raw states ``(..., S)``."""
        dx = state[..., self.target] - state[..., self.origin]
        dy = state[..., self.target + 1] - state[..., self.origin + 1]
        # Coincident points give atan2(0, softening) = 0: world axes, not noise.
        return torch.atan2(dy, dx + FRAME_SOFTENING * (dx.abs() + dy.abs() < FRAME_SOFTENING))

    def to_frame(self, actions: torch.Tensor, heading: torch.Tensor) -> torch.Tensor:
        """Return world ``actions (..., A)`` seen in frames of heading ``(...)``."""
        return rotate_planar(actions, -heading)

    def to_world(self, actions: torch.Tensor, heading: torch.Tensor) -> torch.Tensor:
        """Return frame ``actions (..., A)`` in world coordinates."""
        return rotate_planar(actions, heading)


def rotate_planar(actions: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each planar pair of ``actions (..., A)`` by ``angle``, broadcast over the rest."""
    cos, sin = torch.cos(angle).to(actions.dtype), torch.sin(angle).to(actions.dtype)
    out = actions.clone()
    for i, j in PLANAR_PAIRS:
        x, y = actions[..., i], actions[..., j]
        out[..., i] = cos * x - sin * y
        out[..., j] = sin * x + cos * y
    return out
