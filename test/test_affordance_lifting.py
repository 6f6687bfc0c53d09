"""Tests of lifting keypoints to world points, multi-view fusion and derived waypoints."""

import numpy as np
import pytest
from visual_rl_stack.sim.cameras import CameraFrame, look_at
from visual_rl_stack.vlm_affordance.affordance import Keypoint, WAYPOINT_ORDER
from visual_rl_stack.vlm_affordance.lifting import (
    fuse, lift_keypoints, lift_pixel, LiftSettings, Tabletop, world_points)

WIDTH, HEIGHT = 160, 120
K = np.array([[110.0, 0.0, 79.5], [0.0, 110.0, 59.5], [0.0, 0.0, 1.0]])


def plane_camera(eye, target=(0.55, 0.0, 0.0), plane_z=0.0, name='front') -> CameraFrame:
    """Return a synthetic frame of the horizontal plane ``z = plane_z`` seen from ``eye``."""
    pose = look_at(np.asarray(eye, float), np.asarray(target, float), np.array([0.0, 0, 1]))
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    rays = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(K).T @ pose[:3, :3].T
    depth = (plane_z - pose[2, 3]) / rays[..., 2]
    return CameraFrame(name, np.zeros((HEIGHT, WIDTH, 3), np.uint8), depth.astype(np.float32),
                       K.copy(), pose, WIDTH, HEIGHT)


def project(frame: CameraFrame, point) -> tuple[float, float]:
    """Return the pixel at which ``frame`` sees a world point."""
    R, t = frame.T_world_camera[:3, :3], frame.T_world_camera[:3, 3]
    x, y, z = R.T @ (np.asarray(point, float) - t)
    return K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]


FRONT = plane_camera((1.0, 0.0, 0.5))


@pytest.mark.parametrize('point', [(0.55, 0.03, 0.0), (0.47, -0.08, 0.0), (0.62, 0.11, 0.0)])
def test_projected_point_lifts_back_within_a_millimetre(point):
    u, v = project(FRONT, point)
    assert 0 < u < WIDTH - 1 and 0 < v < HEIGHT - 1 and u != round(u)
    lifted, why = lift_pixel(FRONT, u, v)
    assert why == ''
    assert np.linalg.norm(lifted - point) < 1e-3


def test_world_points_match_the_plane():
    points = world_points(FRONT)
    assert points.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_allclose(points[..., 2], 0.0, atol=1e-5)


def test_bad_depth_and_bad_places_are_rejected_with_reasons():
    u, v = project(FRONT, (0.55, 0.0, 0.0))
    for bad in (np.nan, 0.0, np.inf):
        frame = plane_camera((1.0, 0.0, 0.5))
        frame.depth[int(v) - 3:int(v) + 4, int(u) - 3:int(u) + 4] = bad
        point, why = lift_pixel(frame, u, v)
        assert point is None and why.startswith('depth hole: 0 of 25')
    frame = plane_camera((1.0, 0.0, 0.5))
    frame.depth[int(round(v)), int(round(u))] = np.nan
    point, why = lift_pixel(frame, u, v)
    assert why == '' and np.linalg.norm(point - (0.55, 0.0, 0.0)) < 1e-3
    sunk = plane_camera((1.0, 0.0, 0.5), plane_z=-0.05)
    assert 'below the table' in lift_pixel(sunk, u, v)[1]
    far_u, far_v = project(FRONT, (0.85, 0.0, 0.0))
    assert 'outside the workspace' in lift_pixel(FRONT, far_u, far_v)[1]
    assert 'outside the 160x120 image' in lift_pixel(FRONT, 170.0, 10.0)[1]
    narrow = LiftSettings(tabletop=Tabletop(lo=(0.6, -0.4), hi=(0.8, 0.4)))
    assert 'outside the workspace' in lift_pixel(FRONT, u, v, narrow)[1]


def test_fusion_drops_the_outlier_view():
    truth = np.array([0.52, 0.04, 0.0])
    frames = {'front': FRONT, 'side': plane_camera((0.55, 0.6, 0.4), name='side'),
              'left': plane_camera((0.55, -0.6, 0.4), name='left')}
    keypoints = [Keypoint('grasp', view, *project(frame, truth))
                 for view, frame in frames.items() if view != 'left']
    keypoints.append(Keypoint('grasp', 'left', *project(frames['left'], truth + (0.1, 0, 0))))
    keypoints.append(Keypoint('target', 'front', *project(FRONT, (0.6, -0.1, 0.0))))
    result = lift_keypoints(keypoints, frames)
    assert np.linalg.norm(result.points['grasp'] - truth) < 1e-3
    assert result.diagnostics['grasp'].startswith('ok from front, side (outlier left 0.100 m')
    pair = {'a': truth, 'b': truth + (0.0, 0.05, 0.0)}
    fused, why = fuse(pair, 0.03)
    assert fused is None and 'disagree' in why


def test_waypoints_derive_the_approach_points():
    grasp, target = np.array([0.5, 0.0, 0.0]), np.array([0.6, -0.1, 0.0])
    keypoints = [Keypoint('grasp', 'front', *project(FRONT, grasp)),
                 Keypoint('target', 'front', *project(FRONT, target), height=0.02)]
    result = lift_keypoints(keypoints, {'front': FRONT})
    assert result.diagnostic == 'ok'
    expected = {'pre_contact': grasp + (0, 0, 0.1), 'grasp': grasp,
                'post_contact': target + (0, 0, 0.12), 'target': target + (0, 0, 0.02)}
    np.testing.assert_allclose(result.waypoints, [expected[n] for n in WAYPOINT_ORDER],
                               atol=1e-3)
    assert result.diagnostics['pre_contact'] == 'derived: grasp raised 0.100 m'


def test_proposed_approach_point_is_raised_and_a_rejected_one_derived():
    grasp, target = np.array([0.5, 0.0, 0.0]), np.array([0.6, -0.1, 0.0])
    keypoints = [Keypoint('grasp', 'front', *project(FRONT, grasp)),
                 Keypoint('target', 'front', *project(FRONT, target)),
                 Keypoint('pre_contact', 'front', *project(FRONT, grasp + (0.02, 0, 0))),
                 Keypoint('post_contact', 'front', 500.0, 10.0)]
    result = lift_keypoints(keypoints, {'front': FRONT})
    np.testing.assert_allclose(result.points['pre_contact'], grasp + (0.02, 0, 0.1), atol=1e-3)
    np.testing.assert_allclose(result.points['post_contact'], target + (0, 0, 0.1), atol=1e-3)
    assert result.diagnostics['post_contact'].startswith('derived: target raised 0.100 m '
                                                         '(rejected: front: pixel')


def test_missing_or_rejected_target_gives_no_waypoints():
    grasp = Keypoint('grasp', 'front', *project(FRONT, (0.5, 0.0, 0.0)))
    result = lift_keypoints([grasp], {'front': FRONT})
    assert result.waypoints is None and result.diagnostic == 'no waypoints: target not proposed'
    unseen = Keypoint('target', 'top', 10.0, 10.0)
    result = lift_keypoints([grasp, unseen], {'front': FRONT})
    assert result.waypoints is None
    assert result.diagnostic == 'no waypoints: target rejected: top: no frame for this view'
