"""Back-projection, fusion, cropping, downsampling and PointCloud2 packing (no ROS graph)."""

import numpy as np
import pytest
from sensor_msgs.msg import PointField
from visual_rl_stack.core.image_buffers import ConversionError
from visual_rl_stack.perception.latency import (BLOCK_MAX, BLOCK_MIN, camera_position, intrinsics,
                                                LOOKING_DOWN_XYZW, synthetic_view)
from visual_rl_stack.perception.point_cloud import (backproject, CloudSettings, crop_to_box,
                                                    fuse_views, remove_outliers, voxel_downsample)
from visual_rl_stack.perception.preprocess import ViewFrame
from visual_rl_stack.ros.msg_conversions import (from_point_cloud2, make_pose, pose_to_matrix,
                                                 stamp_from_seconds, to_point_cloud2)

#: Camera at (0, 0, 0.3) looking along world +x: optical x = -y, y = -z, z = +x.
LOOKING_FORWARD = np.array([[0.0, 0.0, 1.0, 0.0],
                            [-1.0, 0.0, 0.0, 0.0],
                            [0.0, -1.0, 0.0, 0.3],
                            [0.0, 0.0, 0.0, 1.0]])
K = np.array([[100.0, 0.0, 31.5], [0.0, 100.0, 23.5], [0.0, 0.0, 1.0]])


def test_plane_at_known_depth_lands_at_known_world_coordinates():
    depth = np.full((48, 64), 0.5, np.float32)
    depth[0, 0] = np.nan
    depth[0, 1] = 0.0
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 1] = 77
    points, colors = backproject(depth, K, LOOKING_FORWARD, rgb)
    assert len(points) == 48 * 64 - 2, 'pixels without depth must be skipped'
    np.testing.assert_allclose(points[:, 0], 0.5)
    # Pixel centres 31.5 px either side of the principal point at f = 100 px and 0.5 m.
    assert points[:, 1].min() == pytest.approx(-31.5 * 0.5 / 100)
    assert points[:, 1].max() == pytest.approx(31.5 * 0.5 / 100)
    assert points[:, 2].min() == pytest.approx(0.3 - 23.5 * 0.5 / 100)
    assert points[:, 2].max() == pytest.approx(0.3 + 23.5 * 0.5 / 100)
    assert (colors == [0, 77, 0]).all()


def test_fused_synthetic_views_rebuild_table_and_block():
    views = []
    for index in range(3):
        rgb, depth = synthetic_view(index, 96, 96)
        pose = pose_to_matrix(make_pose(camera_position(index), LOOKING_DOWN_XYZW))
        views.append((ViewFrame(rgb=rgb, depth=depth, K=intrinsics(96, 96)), pose))
    settings = CloudSettings(voxel_size=0.01)
    points, colors = fuse_views(views, settings)
    assert len(points) > 1000
    assert np.all(points >= np.array(settings.workspace_min) - 1e-9)
    assert np.all(points <= np.array(settings.workspace_max) + 1e-9)
    on_table = np.abs(points[:, 2]) < 1e-6
    on_top = np.abs(points[:, 2] - BLOCK_MAX[2]) < 1e-6
    assert on_table.sum() > 500 and on_top.sum() > 20
    # Everything else is the block's sides; nothing floats or sinks.
    inside_block = np.all((points >= BLOCK_MIN - 1e-6) & (points <= BLOCK_MAX + 1e-6), axis=1)
    assert np.all(on_table | inside_block)
    np.testing.assert_allclose(points[on_top, :2].mean(axis=0),
                               (BLOCK_MIN[:2] + BLOCK_MAX[:2]) / 2, atol=0.005)
    assert (colors[inside_block] == 255).all()


def test_crop_keeps_only_points_in_the_box():
    points = np.array([[0.5, 0.0, 0.1], [0.1, 0.0, 0.1], [0.5, 0.6, 0.1], [0.9, 0.45, 0.5]])
    colors = np.arange(12, dtype=np.uint8).reshape(4, 3)
    kept, kept_colors = crop_to_box(points, colors, (0.2, -0.45, -0.02), (0.9, 0.45, 0.5))
    np.testing.assert_array_equal(kept, points[[0, 3]])
    np.testing.assert_array_equal(kept_colors, colors[[0, 3]])


def test_voxel_downsampling_and_outlier_removal_reduce_points():
    rng = np.random.default_rng(0)
    points = rng.uniform(0.0, 0.1, size=(5000, 3))
    colors = rng.integers(0, 255, size=(5000, 3), dtype=np.uint8)
    down, down_colors = voxel_downsample(points, colors, 0.02)
    assert len(down) <= 6 ** 3 and len(down) == len(down_colors)
    assert voxel_downsample(points, colors, 0.0)[0] is points
    with_outlier = np.vstack([points, [[5.0, 5.0, 5.0]]])
    filtered, _ = remove_outliers(with_outlier, np.vstack([colors, [[0, 0, 0]]]), 20, 2.0)
    assert len(filtered) < len(with_outlier)
    assert filtered.max() < 1.0


def test_point_cloud2_round_trip():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(100, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(100, 3)).astype(np.uint8)
    msg = to_point_cloud2(points, colors, stamp_from_seconds(2.0), 'world')
    assert msg.header.frame_id == 'world' and msg.width == 100 and msg.point_step == 16
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [
        ('x', 0, PointField.FLOAT32), ('y', 4, PointField.FLOAT32),
        ('z', 8, PointField.FLOAT32), ('rgb', 12, PointField.FLOAT32)]
    back, back_colors = from_point_cloud2(msg)
    np.testing.assert_array_equal(back, points)
    np.testing.assert_array_equal(back_colors, colors)
    # The packed colour is PCL's 0x00RRGGBB.
    first = np.frombuffer(bytes(msg.data[12:16]), '<u4')[0]
    assert first == (int(colors[0, 0]) << 16) | (int(colors[0, 1]) << 8) | int(colors[0, 2])
    empty, _ = from_point_cloud2(to_point_cloud2(np.zeros((0, 3)), np.zeros((0, 3), np.uint8),
                                                 stamp_from_seconds(0.0), 'world'))
    assert empty.shape == (0, 3)


def test_point_cloud2_without_rgb_is_refused():
    msg = to_point_cloud2(np.zeros((1, 3)), np.zeros((1, 3), np.uint8),
                          stamp_from_seconds(0.0), 'world')
    msg.fields = msg.fields[:3]
    with pytest.raises(ConversionError, match="float32 field 'rgb'"):
        from_point_cloud2(msg)


def test_empty_workspace_box_is_refused():
    with pytest.raises(ValueError, match='must be below'):
        CloudSettings(workspace_min=(0.0, 0.0, 0.0), workspace_max=(1.0, 0.0, 1.0))
