"""
What a keypoint-affordance model sees and answers (KAGI), independent of the model.

A :class:`Prompt` is the camera views with the overlays drawn on them (numbered
candidate points, a lettered grid), the instruction, and the candidates in
pixel coordinates of the ORIGINAL images. A backend turns a prompt into a raw
text reply (:meth:`AffordanceBackend.ask`) and parses that reply into an
:class:`Affordance` (:meth:`AffordanceBackend.parse`), so the validation, retry,
logging and cache around it are written once for every model. Every pixel in
an :class:`Affordance` is in the original image's frame, whatever size the
model resized the image to: rescaling is the parser's job.
"""

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Protocol

import numpy as np

#: Keypoint names, in the order the dense reward visits them as waypoints:
#: above the grasp point, the grasp point, above the target, the target.
WAYPOINT_ORDER = ('pre_contact', 'grasp', 'post_contact', 'target')
#: Every keypoint name a reply may carry (``function``: the tool point of a tool task).
KEYPOINT_NAMES = WAYPOINT_ORDER + ('function',)
#: Keypoints every affordance must name; the waypoints above them may be derived.
REQUIRED_KEYPOINTS = ('grasp', 'target')


class ReplyError(ValueError):
    """A model reply that cannot be turned into a valid affordance (the message says why)."""


@dataclass(frozen=True)
class Candidate:
    """One numbered point drawn on a view, on an object found in that view's depth."""

    number: int
    view: str
    u: float
    v: float
    region: int


@dataclass(frozen=True)
class Keypoint:
    """
    A named point in pixel coordinates (u right, v down) of one original view.

    ``height`` (metres, optional) raises the lifted surface point, as MOKA's
    pre- and post-contact heights do: a pixel only sees the surface behind a
    point in the air.
    """

    name: str
    view: str
    u: float
    v: float
    candidate: Optional[int] = None
    height: Optional[float] = None


@dataclass
class Prompt:
    """
    The views as the model sees them, the instruction and the numbered candidates.

    ``frames`` optionally holds the camera frames the views were drawn from
    (:class:`visual_rl_stack.sim.cameras.CameraFrame`: RGB without overlays,
    metric depth, ``K``, pose), for backends that read RGB-D directly.
    """

    instruction: str
    images: Mapping[str, np.ndarray]
    candidates: tuple[Candidate, ...] = ()
    grid: tuple[int, int] = (5, 5)
    original_sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    frames: Mapping[str, Any] = field(default_factory=dict)

    def size_of(self, view: str) -> tuple[int, int]:
        """Return ``(width, height)`` of the original ``view`` image."""
        if view in self.original_sizes:
            return self.original_sizes[view]
        height, width = self.images[view].shape[:2]
        return width, height


@dataclass(frozen=True)
class Affordance:
    """The keypoints a backend proposed for one instruction, with the reply they came from."""

    keypoints: Mapping[str, Keypoint]
    backend: str
    raw_reply: str = ''

    def waypoints(self) -> tuple[Keypoint, ...]:
        """Return the proposed keypoints in :data:`WAYPOINT_ORDER`, skipping absent ones."""
        return tuple(self.keypoints[name] for name in WAYPOINT_ORDER if name in self.keypoints)


class AffordanceBackend(Protocol):
    """A model that answers a prompt with text and parses its own reply format."""

    name: str

    def ask(self, prompt: Prompt, attempt: int) -> str:
        """Return the model's raw reply to ``prompt`` (``attempt`` counts retries from 0)."""

    def parse(self, reply: str, prompt: Prompt) -> Affordance:
        """Return the affordance in ``reply``, or raise :class:`ReplyError` saying why not."""
