"""Frame validation, resizing with matching intrinsics, and tiling (no ROS graph needed)."""

import numpy as np
import pytest
from visual_rl_stack.core.image_buffers import ConversionError
from visual_rl_stack.perception.point_cloud import backproject
from visual_rl_stack.perception.preprocess import (FrameRejected, invalid_depth, prepare_view,
                                                   resize_depth, resize_rgb, scale_intrinsics,
                                                   tile_views)
from visual_rl_stack.ros.msg_conversions import (array_to_image, make_camera_info,
                                                 stamp_from_seconds)

STAMP = stamp_from_seconds(3.5)
K = np.array([[200.0, 0.0, 159.5], [0.0, 210.0, 119.5], [0.0, 0.0, 1.0]])


def view_messages(width=320, height=240, depth=None, color_encoding='rgb8'):
    """Colour, depth and CameraInfo messages of one 320x240 view."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, :, 0] = np.arange(width) % 256
    depth = np.full((height, width), 1.5, np.float32) if depth is None else depth
    color = array_to_image(rgb, 'rgb8', STAMP, 'cam')
    color.encoding = color_encoding
    return (color, array_to_image(depth, '32FC1', STAMP, 'cam'),
            make_camera_info(K, 320, 240, STAMP, 'cam'))


def test_scaled_intrinsics_keep_every_viewing_ray():
    """The image border and a tilted plane back-project to the same place after resizing."""
    scaled = scale_intrinsics(K, (320, 240), (128, 96))
    # Rays through the outer edges of the image (pixel corners) do not move.
    for (u, v), (u2, v2) in [((-0.5, -0.5), (-0.5, -0.5)), ((319.5, 239.5), (127.5, 95.5))]:
        ray = np.linalg.solve(K, [u, v, 1.0])
        ray2 = np.linalg.solve(scaled, [u2, v2, 1.0])
        np.testing.assert_allclose(ray, ray2, atol=1e-12)
    # A plane z = 1 + 0.5 x, rendered at full size, resized by nearest neighbour:
    # every back-projected point stays on the plane within one source pixel.
    v, u = np.indices((240, 320))
    rays_x = (u - K[0, 2]) / K[0, 0]
    depth = (1.0 / (1.0 - 0.5 * rays_x)).astype(np.float32)
    small = resize_depth(depth, 128, 96)
    points, _ = backproject(small, scaled, np.eye(4))
    assert len(points) == 128 * 96
    # Half a source pixel (1/400 in ray slope) moves depth by at most ~5 mm on this plane.
    np.testing.assert_allclose(points[:, 2], 1.0 + 0.5 * points[:, 0], atol=0.01)


def test_resizing_shapes_and_content():
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[:, 160:] = 200
    small = resize_rgb(rgb, 128, 96)
    assert small.shape == (96, 128, 3) and small.dtype == np.uint8
    assert small[:, :63].max() == 0 and small[:, 65:].min() == 200
    depth = np.arange(240 * 320, dtype=np.float32).reshape(240, 320)
    nearest = resize_depth(depth, 128, 96)
    assert nearest.shape == (96, 128)
    assert np.isin(nearest, depth).all(), 'nearest neighbour must not invent depth values'


def test_tiling_keeps_parameter_order():
    images = {name: np.full((4, 5, 3), value, np.uint8)
              for name, value in [('front', 10), ('side', 20), ('wrist', 30)]}
    tiled = tile_views(images, ['wrist', 'front', 'side'])
    assert tiled.shape == (4, 15, 3)
    assert [tiled[0, 5 * i, 0] for i in range(3)] == [30, 10, 20]
    with pytest.raises(ValueError, match=r"missing views \['rear'\]"):
        tile_views(images, ['front', 'rear'])


def test_prepare_view_resizes_and_scales_k():
    frame = prepare_view('front', *view_messages(), 128, 96, 0.5)
    assert frame.rgb.shape == (96, 128, 3)
    assert frame.depth.shape == (96, 128) and np.all(frame.depth == 1.5)
    np.testing.assert_allclose(frame.K, scale_intrinsics(K, (320, 240), (128, 96)))


def test_bgr_input_is_converted_to_rgb():
    color, depth, info = view_messages()
    bgr = np.zeros((240, 320, 3), np.uint8)
    bgr[:, :, 0] = 255  # blue in BGR order
    color = array_to_image(bgr, 'bgr8', STAMP, 'cam')
    frame = prepare_view('front', color, depth, info, 320, 240, 0.5)
    assert frame.rgb[0, 0].tolist() == [0, 0, 255]


def test_unsupported_encoding_is_rejected_clearly():
    with pytest.raises(FrameRejected, match="front color: unsupported encoding 'yuv422'") as err:
        prepare_view('front', *view_messages(color_encoding='yuv422'), 128, 128, 0.5)
    assert err.value.check == 'encoding' and isinstance(err.value, ConversionError)


def test_size_mismatch_with_camera_info_is_rejected():
    color, depth, info = view_messages()
    info.width = 640
    with pytest.raises(FrameRejected, match='image is 320x240 but camera_info says 640x240'):
        prepare_view('side', color, depth, info, 128, 128, 0.5)


def test_truncated_buffer_is_a_conversion_error():
    color, depth, info = view_messages()
    depth.data = depth.data[:100]
    with pytest.raises(FrameRejected, match='side depth: image buffer') as err:
        prepare_view('side', color, depth, info, 128, 128, 0.5)
    assert err.value.check == 'conversion'


def test_invalid_depth_fraction_is_reported_and_thresholded():
    depth = np.full((240, 320), 1.0, np.float32)
    depth[:60] = np.nan     # 25 %
    depth[60:84] = np.inf   # 10 %
    depth[84:96] = 0.0      # 5 %
    fractions = invalid_depth(depth)
    assert fractions['nan'] == pytest.approx(0.25)
    assert fractions['invalid'] == pytest.approx(0.40)
    frame = prepare_view('wrist', *view_messages(depth=depth), 320, 240, 0.5)
    assert np.isnan(frame.depth[:96]).all() and np.all(frame.depth[96:] == 1.0)
    with pytest.raises(FrameRejected, match=r'40\.0% of depth pixels have no reading \(NaN 25'):
        prepare_view('wrist', *view_messages(depth=depth), 128, 128, 0.3)
    all_nan = np.full((240, 320), np.nan, np.float32)
    with pytest.raises(FrameRejected, match='100.0% of depth pixels'):
        prepare_view('wrist', *view_messages(depth=all_nan), 128, 128, 0.5)
