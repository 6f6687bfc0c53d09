"""Tests of depth-based candidate points, grid tiles, overlays and saved prompts."""

import json

import cv2
import numpy as np
import pytest
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.sim.tasks.lift import CUBE_HALF
from visual_rl_stack.vlm_affordance.affordance import Candidate
from visual_rl_stack.vlm_affordance.grid import tile_at, tile_center
from visual_rl_stack.vlm_affordance.lifting import world_points
from visual_rl_stack.vlm_affordance.prompting import (
    build_prompt, draw_overlay, find_candidates, MARKER_COLOR, object_mask, save_prompt)

# Farthest a point on a cube's surface is from its centre.
CUBE_REACH = np.sqrt(3) * CUBE_HALF + 1e-3


@pytest.fixture(scope='module')
def scene():
    sim = TabletopSim(SimConfig(task='stack3'))
    sim.reset(seed=4)
    frames = sim.render(['front', 'side'])
    cubes = np.array([sim.task_state()[f'cube{i}_position'] for i in range(3)])
    yield frames, cubes
    sim.close()


def test_candidates_land_on_the_objects(scene):
    frames, cubes = scene
    candidates = find_candidates(frames)
    assert [c.number for c in candidates] == list(range(1, len(candidates) + 1))
    for view, frame in frames.items():
        points = world_points(frame)
        own = [c for c in candidates if c.view == view]
        owner = {}
        for c in own:
            p = points[int(c.v), int(c.u)]
            distance = np.linalg.norm(cubes - p, axis=1)
            assert distance.min() < CUBE_REACH, (view, c, p)
            owner.setdefault(c.region, set()).add(int(np.argmin(distance)))
        # One region per cube, every region on a single cube, at most six points each.
        assert sorted(len(cubes_of) for cubes_of in owner.values()) == [1, 1, 1]
        assert set().union(*owner.values()) == {0, 1, 2}
        assert 3 <= len(own) <= 18


def test_candidates_of_an_object_are_spaced_so_their_numbers_stay_legible(scene):
    frames, _ = scene
    dense = find_candidates(frames, min_spacing=0.0)
    spaced = find_candidates(frames)
    assert len(spaced) < len(dense)
    for a in spaced:
        for b in spaced:
            if a.number < b.number and (a.view, a.region) == (b.view, b.region):
                assert np.hypot(a.u - b.u, a.v - b.v) >= 0.03 * 128


def test_exclude_mask_and_per_object_count(scene):
    frames, cubes = scene
    front = {'front': frames['front']}
    mask = object_mask(frames['front'])
    points = world_points(frames['front'])
    near_first = np.linalg.norm(points - cubes[0], axis=2) < 2 * CUBE_REACH
    candidates = find_candidates(front, per_object=2, exclude={'front': mask & near_first},
                                 min_spacing=0.0)
    assert len(candidates) == 4
    assert all(np.linalg.norm(points[int(c.v), int(c.u)] - cubes[0]) > CUBE_REACH
               for c in candidates)
    with pytest.raises(ValueError, match='exclude mask'):
        find_candidates(front, exclude={'front': np.zeros((3, 3), bool)})


def test_grid_tiles_round_trip():
    size = (128, 96)
    for column in 'abcde':
        for row in range(1, 6):
            u, v = tile_center(f'{column}{row}', size)
            assert tile_at(u, v, size) == f'{column}{row}'
    u, v = tile_center('a1', size)
    assert u < 128 / 5 and v > 96 * 4 / 5
    u, v = tile_center('E5', size)
    assert u > 128 * 4 / 5 and v < 96 / 5
    assert tile_at(-0.5, 95.5, size) == 'a1' and tile_at(127.5, -0.5, size) == 'e5'
    for bad in ('f1', 'a6', 'a0', 'zz', '', '3c'):
        with pytest.raises(ValueError, match='no tile'):
            tile_center(bad, size)
    with pytest.raises(ValueError, match='outside'):
        tile_at(130.0, 10.0, size)


def test_overlay_changes_only_where_drawn():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (320, 400, 3), dtype=np.uint8)
    before = image.copy()
    candidates = (Candidate(1, 'front', 100.0, 150.0, 1), Candidate(2, 'front', 310.0, 60.0, 1))
    out = draw_overlay(image, candidates)
    assert np.array_equal(image, before)
    changed = (out != image).any(axis=2)
    v, u = np.mgrid[0:320, 0:400]
    allowed = np.zeros_like(changed)
    for x in (80, 160, 240, 320):
        allowed |= np.abs(u - x) <= 2
    for y in (64, 128, 192, 256):
        allowed |= np.abs(v - y) <= 2
    allowed |= ((u % 80) < 30) & ((v % 64) < 16)
    for c in candidates:
        allowed |= np.hypot(u - c.u, v - c.v) < 25
    assert not (changed & ~allowed).any()
    assert changed.mean() < 0.2
    for c in candidates:
        assert tuple(out[int(c.v), int(c.u)]) == MARKER_COLOR
    assert changed[:, 160].all() and changed[192, :].all()


def test_prompt_is_upscaled_and_saved(scene, tmp_path):
    frames, _ = scene
    prompt = build_prompt(frames, 'stack the cubes')
    assert prompt.original_sizes == {'front': (128, 128), 'side': (128, 128)}
    assert prompt.images['front'].shape == (512, 512, 3)
    first = prompt.candidates[0]
    centre = prompt.images[first.view][int(first.v * 4 + 1.5), int(first.u * 4 + 1.5)]
    assert tuple(centre) == MARKER_COLOR
    paths = save_prompt(prompt, tmp_path / 'prompt')
    assert sorted(p.name for p in paths) == ['front.png', 'prompt.json', 'side.png']
    for view, image in prompt.images.items():
        saved = cv2.cvtColor(cv2.imread(str(tmp_path / 'prompt' / f'{view}.png')),
                             cv2.COLOR_BGR2RGB)
        assert np.array_equal(saved, image)
    meta = json.loads((tmp_path / 'prompt' / 'prompt.json').read_text())
    assert meta['instruction'] == 'stack the cubes' and meta['grid'] == [5, 5]
    assert [Candidate(**c) for c in meta['candidates']] == list(prompt.candidates)
    assert meta['views']['side'] == {'image': 'side.png', 'original_size': [128, 128],
                                     'image_size': [512, 512]}
