"""
Move a predicted keypoint onto the centre of the top face it points at, using depth only.

At 128x128 a pixel spans about 6 mm on the table, and more along the line of
sight on a foreshortened top face, so the network's pixel alone rarely lands
within a centimetre of a face's centre. The view's depth does: the object the
pixel lies on is the connected region of pixels standing over the table
(:func:`..prompting.object_mask`, as the candidates use), its top face the
region's pixels within ``tolerance`` of its highest point, and the face's
centre the mean of their world points, projected back into the view. Nothing
here reads simulator state, so it runs on a real RGB-D camera too.
"""

from typing import Optional

import cv2
import numpy as np
from visual_rl_stack.sim.cameras import CameraFrame

from ..lifting import world_points
from ..prompting import object_mask

#: Top-face pixels lie within this height of the region's highest point (m).
TOP_TOLERANCE = 0.004
#: A target is only moved when its own pixel is on the top face (within this height, m).
ON_TOP = 0.006


def top_face_centre(frame: CameraFrame, u: float, v: float, search: int = 2,
                    require_on_top: bool = False) -> Optional[tuple[float, float]]:
    """
    Return the pixel of the top-face centre of the object under ``(u, v)``, or None.

    The object is the region of :func:`object_mask` under the pixel, or the
    nearest one within ``search`` pixels. None when there is none, or, with
    ``require_on_top``, when the pixel itself does not see the top face (a
    target pointed into a hole or at a side stays where it is).
    """
    mask = object_mask(frame)
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    cu, cv = int(round(u)), int(round(v))
    v0, v1 = max(cv - search, 0), min(cv + search + 1, frame.height)
    u0, u1 = max(cu - search, 0), min(cu + search + 1, frame.width)
    window = labels[v0:v1, u0:u1]
    if not window.any():
        return None
    vs, us = np.nonzero(window)
    nearest = np.argmin((vs + v0 - v) ** 2 + (us + u0 - u) ** 2)
    label = window[vs[nearest], us[nearest]]
    points = world_points(frame)
    region = labels == label
    top = np.nanmax(points[..., 2][region])
    if require_on_top:
        here = points[min(max(cv, 0), frame.height - 1), min(max(cu, 0), frame.width - 1), 2]
        if not (np.isfinite(here) and here >= top - ON_TOP):
            return None
    face = region & (points[..., 2] >= top - TOP_TOLERANCE)
    centre = points[face].mean(axis=0)
    rotation, origin = frame.T_world_camera[:3, :3], frame.T_world_camera[:3, 3]
    x, y, z = rotation.T @ (centre - origin)
    return float(frame.K[0, 0] * x / z + frame.K[0, 2]), float(frame.K[1, 1] * y / z
                                                               + frame.K[1, 2])
