"""
The keypoint model's data: randomised scenes, several instructions each, labelled pixels.

Each scene (:mod:`.scene`) is rendered once at the model's input size; its
instructions share the images and differ in their labels. A label is the
privileged grasp and target point (:func:`.scene.keypoint_truth`) projected
into every view with the frame's ``K`` and ``T_world_camera``, in pixels of
the network input, with whether it falls inside the image; the target is
projected at its surface point (a lift target 10 cm up is pointed at on the
top face, with its height as a separate label). Scenes render in worker
processes, a chunk of seeds at a time.
"""

from dataclasses import dataclass
import multiprocessing
import random
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from visual_rl_stack.sim.config import CameraSpec, default_cameras

from .language import choose, encode, Instruction
from .model import HEATMAP_KEYPOINTS, view_arrays
from .scene import in_image, keypoint_truth, project, Scene, SceneMaker, VIEWS
from ..replies import to_model_pixels

CHUNK = 25


@dataclass
class KeypointData:
    """Scenes as arrays: ``N`` scenes, ``J`` instructions, ``V`` views, ``K`` keypoints."""

    rgb: np.ndarray
    xyz: np.ndarray
    texts: list[list[str]]
    uv: np.ndarray
    visible: np.ndarray
    height: np.ndarray
    tasks: list[str]
    seeds: list[int]

    def __len__(self) -> int:
        """Return the number of scenes."""
        return len(self.seeds)

    def tokens(self, tokenizer, length: int) -> np.ndarray:
        """Return the ``NxJxL`` token ids of every instruction."""
        return np.array([[encode(tokenizer, text, length) for text in texts]
                         for texts in self.texts], dtype=np.int64)


def labels(scene: Scene, instruction: Instruction,
           size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return one instruction's ``VxKx2`` input pixels, ``VxK`` visibility and ``K`` heights."""
    truth = keypoint_truth(scene.task, scene.state, instruction)
    surface = {'grasp': truth.grasp, 'target': truth.target - (0.0, 0.0, truth.target_height)}
    uv = np.zeros((len(scene.frames), len(HEATMAP_KEYPOINTS), 2), np.float32)
    visible = np.zeros(uv.shape[:2], bool)
    for i, frame in enumerate(scene.frames.values()):
        for k, name in enumerate(HEATMAP_KEYPOINTS):
            u, v, depth = project(frame, surface[name])
            visible[i, k] = depth > 0 and in_image(frame, u, v)
            uv[i, k] = to_model_pixels(u, v, (frame.width, frame.height), (size, size))
    return uv, visible, np.array([0.0, truth.target_height], np.float32)


def scene_cameras(size: int) -> tuple[CameraSpec, ...]:
    """Return the default cameras rendered at ``size`` square (what the model reads)."""
    return tuple(CameraSpec(**{**spec.__dict__, 'width': size, 'height': size})
                 for spec in default_cameras())


_MAKER: Optional[SceneMaker] = None


def _render(job: tuple[str, Sequence[int], int, int]) -> list[tuple]:
    """Render one chunk of seeds of one task in a worker; return per-scene rows."""
    global _MAKER
    task, seeds, count, size = job
    if _MAKER is None:
        _MAKER = SceneMaker(VIEWS, cameras=scene_cameras(size))
    rows = []
    for seed in seeds:
        scene = _MAKER.make(task, seed)
        arrays = [view_arrays(frame, size) for frame in scene.frames.values()]
        chosen = choose(scene.instructions(), count, random.Random(f'text:{task}:{seed}'))
        labelled = [labels(scene, instruction, size) for instruction in chosen]
        rows.append((task, seed, np.stack([a[0] for a in arrays]),
                     np.stack([a[1] for a in arrays]), [i.text for i in chosen],
                     np.stack([lab[0] for lab in labelled]),
                     np.stack([lab[1] for lab in labelled]),
                     np.stack([lab[2] for lab in labelled])))
    return rows


def generate(tasks: Sequence[str], seeds: Sequence[int], instructions: int, size: int,
             workers: int = 1, progress: Optional[Callable[[int], None]] = None) -> KeypointData:
    """Render ``seeds`` of every task with ``instructions`` instructions each (in order)."""
    jobs = [(task, seeds[i:i + CHUNK], instructions, size)
            for task in tasks for i in range(0, len(seeds), CHUNK)]
    rows: list[tuple] = []
    for chunk in _map(jobs, workers):
        rows += chunk
        if progress:
            progress(len(chunk))
    return KeypointData(np.stack([r[2] for r in rows]), np.stack([r[3] for r in rows]),
                        [r[4] for r in rows], np.stack([r[5] for r in rows]),
                        np.stack([r[6] for r in rows]), np.stack([r[7] for r in rows]),
                        [r[0] for r in rows], [r[1] for r in rows])


def _map(jobs: list, workers: int) -> Iterator[list[tuple]]:
    """Yield the rendered chunks in order, from worker processes when ``workers > 1``."""
    if workers <= 1:
        yield from map(_render, jobs)
        return
    with multiprocessing.get_context('spawn').Pool(workers) as pool:
        yield from pool.imap(_render, jobs)
