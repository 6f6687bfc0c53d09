"""
The observation contract: one definition of the state vector and images a policy sees.

The bag reader (training) and the live simulator (evaluation, RL) both build
states through :func:`state_fields`, so a policy sees the same numbers in
evaluation as in training.
"""

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from visual_rl_stack.sim.scene import TabletopSim


def state_fields(ee_position: Sequence[float], ee_orientation: Sequence[float],
                 joint_names: Sequence[str], joint_positions: Sequence[float],
                 task_state: Optional[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """
    Return the named parts of one state vector, in layout order (see :func:`state_vectors`).

    This is the one definition of the layout: the bag reader and the live
    policy runner both build their state through it. Task-state fields are
    float32, as they are on ``/task/state``; the rest is float64.
    """
    fingers = [float(p) for n, p in zip(joint_names, joint_positions) if 'finger' in n]
    fields = {'ee_position': np.asarray(ee_position, dtype=np.float64),
              'ee_orientation': np.asarray(ee_orientation, dtype=np.float64),
              'gripper_width': np.array([sum(fingers)]),
              'joint_positions': np.asarray(joint_positions, dtype=np.float64)}
    for name, value in (task_state or {}).items():
        fields[name] = np.asarray(value, dtype=np.float32)
    return fields


def flatten_state(fields: dict[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Concatenate :func:`state_fields` into one float64 row and its (label, size) layout."""
    row = np.concatenate([np.ravel(v) for v in fields.values()]).astype(np.float64)
    return row, [(name, int(np.size(v))) for name, v in fields.items()]


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Return an ``(H, W, 3)`` uint8 image resized to ``size = (height, width)``."""
    height, width = int(size[0]), int(size[1])
    if image.shape[:2] == (height, width):
        return image
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    resized = F.interpolate(tensor, size=(height, width), mode='bilinear', antialias=True,
                            align_corners=False)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def sim_observation(sim: TabletopSim, state_labels: Optional[Sequence] = None,
                    views: Sequence[str] = (), image_size: Optional[Sequence[int]] = None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """
    Return ``(state float32 (S,), {view: (H, W, 3) uint8})`` of the sim's current step.

    The state has the dataset's layout (ee position, ee quaternion, gripper
    width, joint positions, task-state fields); with ``state_labels`` (the
    run's ``[(label, size), ...]``) a different layout is a ValueError. Images
    are ``sim.render(views)`` colour frames (RGB, alpha dropped), resized to
    ``image_size = (height, width)`` when given and different.
    """
    robot = sim.robot_state()
    fields = state_fields(robot.ee_position, robot.ee_orientation, robot.joint_names,
                          robot.joint_positions, sim.task_state())
    state, labels = flatten_state(fields)
    if state_labels is not None:
        expected = [(str(name), int(size)) for name, size in state_labels]
        if labels != expected:
            raise ValueError(f'the policy was trained on state layout {expected}, but the '
                             f'simulator gives {labels}; was it trained on another task?')
    images = {}
    if views:
        for name, frame in sim.render(list(views)).items():
            rgb = np.asarray(frame.rgb)[..., :3].astype(np.uint8, copy=False)
            images[name] = resize_image(rgb, image_size) if image_size is not None else rgb
    return state.astype(np.float32), images
