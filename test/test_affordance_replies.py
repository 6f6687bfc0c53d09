"""Reply parsers: every format, malformed replies, and pixel rescaling that round-trips."""

import math

import numpy as np
import pytest
from visual_rl_stack.vlm_affordance.affordance import Candidate, Prompt, ReplyError
from visual_rl_stack.vlm_affordance.replies import (
    from_normalized, json_values, keypoint_names, parse_florence_locs, parse_florence_result,
    parse_moka_json, parse_molmo_points, parse_paligemma_boxes, parse_qwen_points,
    qwen_model_size, tile_centre, to_model_pixels, to_original_pixels)

#: Original views: front 320x240 shown upscaled 2x, side 200x100 shown as is.
SIZES = {'front': (320, 240), 'side': (200, 100)}
CANDIDATES = (Candidate(1, 'front', 40.0, 50.0, 1), Candidate(2, 'front', 41.0, 60.0, 1),
              Candidate(3, 'side', 150.0, 20.0, 2))


def _prompt(grid=(5, 5)) -> Prompt:
    """Return a two-view prompt whose front image is shown at twice its original size."""
    images = {'front': np.zeros((480, 640, 3), np.uint8),
              'side': np.zeros((100, 200, 3), np.uint8)}
    return Prompt('put the red cube on the blue target', images, CANDIDATES, grid, SIZES)


def _uv(affordance, name):
    """Return the ``(u, v)`` of keypoint ``name``."""
    point = affordance.keypoints[name]
    return point.u, point.v


# --- keypoint names and coordinate helpers -------------------------------------------------

@pytest.mark.parametrize('label, names', [
    ('grasp', ('grasp',)), ('Grasp Point', ('grasp',)), ('pick', ('grasp',)),
    ('PICK-UP point', ('grasp',)), ('the grasp_keypoint', ('grasp',)), ('place', ('target',)),
    ('Goal', ('target',)), ('target tile', ('target',)), ('pre-contact', ('pre_contact',)),
    ('post contact tile', ('post_contact',)), ('function point', ('function',)),
    ('red cube', ()), ('', ())])
def test_labels_map_to_keypoint_names_leniently(label, names):
    assert keypoint_names(label) == names


def test_aliases_name_keypoints_by_the_phrases_a_detector_was_asked_about():
    aliases = {'red cube': 'grasp', 'blue target': ('target', 'post_contact')}
    assert keypoint_names('The Red  cube', aliases) == ('grasp',)
    assert keypoint_names('blue target', aliases) == ('target', 'post_contact')
    assert keypoint_names('bowl', aliases) == ()


@pytest.mark.parametrize('original, model', [((320, 240), (644, 476)), ((640, 480), (112, 84)),
                                             ((60, 40), (1024, 1024)), ((101, 37), (28, 56))])
def test_rescaling_round_trips_for_non_square_resizes(original, model):
    rng = np.random.default_rng(0)
    for u, v in rng.uniform(-0.5, 1, size=(20, 2)) * (original[0] - 0.5, original[1] - 0.5):
        x, y = to_model_pixels(u, v, original, model)
        assert to_original_pixels(x, y, model, original) == pytest.approx((u, v), abs=1e-9)


def test_rescaling_maps_image_edges_to_edges_and_centres_to_centres():
    assert to_model_pixels(-0.5, -0.5, (320, 240), (640, 360)) == (-0.5, -0.5)
    assert to_model_pixels(319.5, 239.5, (320, 240), (640, 360)) == (639.5, 359.5)
    assert to_original_pixels(1.5, 1.0, (4, 3), (2, 6)) == (0.5, 2.5)
    assert from_normalized(0, 1000, 1000, (320, 240)) == (-0.5, 239.5)


def test_qwen_model_size_is_the_patch_grid_times_the_patch_size():
    assert qwen_model_size((1, 34, 46)) == (644, 476)
    assert qwen_model_size([1, 6, 8], patch_size=16) == (128, 96)


def test_tile_centres_in_replies_and_bad_tiles_are_reply_errors():
    assert tile_centre('a1', (100, 100)) == (9.5, 89.5)
    assert tile_centre('C2', (100, 60), grid=(4, 3)) == (62.0, 29.5)
    for bad in ('f1', 'a6', 'a0', '3c', ''):
        with pytest.raises(ReplyError, match='no tile'):
            tile_centre(bad, (100, 100))


def test_json_values_skip_prose_fences_comments_and_broken_values():
    text = ("Here you go:\n```json\n{'a': 1, // one\n 'b': [1, 2,], # two\n}\n```\n"
            'and {"c": "x // not a comment, # nor this"} {broken')
    assert json_values(text) == [{'a': 1, 'b': [1, 2]}, {'c': 'x // not a comment, # nor this'}]
    assert json_values('[{"a": 1}, {"b": 2') == [{'a': 1}]
    assert json_values("{'it\\'s': \"say \\\"hi\\\"\"}") == [{"it's": 'say "hi"'}]


# --- MOKA-style JSON -----------------------------------------------------------------------

def test_moka_json_reads_candidates_tiles_and_pixels_in_original_frames():
    reply = """Sure! Here is my answer:
```json
{
  "grasp": 2,            // the cube's top
  'target': 'c3',        # the centre tile
  "pre_contact": "P1",
  "post_contact": [320, 120],
  "function": null,
}
```
The cube goes to the middle."""
    affordance = parse_moka_json(reply, _prompt())
    grasp = affordance.keypoints['grasp']
    assert (grasp.view, grasp.u, grasp.v, grasp.candidate) == ('front', 41.0, 60.0, 2)
    assert _uv(affordance, 'target') == (159.5, 119.5)
    assert affordance.keypoints['pre_contact'].candidate == 1
    # [u, v] is a pixel of the 640x480 image shown, the original is 320x240
    assert _uv(affordance, 'post_contact') == (159.75, 59.75)
    assert 'function' not in affordance.keypoints
    names = [p.name for p in affordance.waypoints()]
    assert names == ['pre_contact', 'grasp', 'post_contact', 'target']
    assert affordance.backend == 'moka_json' and affordance.raw_reply == reply


def test_moka_json_reads_views_heights_and_synonyms():
    reply = ('{"pick point": {"candidate": 3}, "place": {"tile": "a1", "view": "side"}, '
             '"post_contact_tile": "a2", "post_contact_height": 0.1, '
             '"pre_contact": {"tile": "b2", "height": 0.05}, "reasoning": "the cube is small"}')
    affordance = parse_moka_json(reply, _prompt())
    grasp, target = affordance.keypoints['grasp'], affordance.keypoints['target']
    assert (grasp.view, grasp.u, grasp.v) == ('side', 150.0, 20.0)
    assert (target.view, target.u, target.v) == ('side', 19.5, 89.5)
    assert affordance.keypoints['post_contact'].height == 0.1
    assert affordance.keypoints['post_contact'].view == 'front'
    assert affordance.keypoints['pre_contact'].height == 0.05


def test_moka_json_grid_tiles_follow_the_prompt_grid():
    affordance = parse_moka_json('{"grasp": "a1", "target": "c2"}', _prompt(grid=(3, 2)))
    assert _uv(affordance, 'grasp') == (52.833333333333336, 179.5)
    assert _uv(affordance, 'target') == (266.1666666666667, 59.5)


@pytest.mark.parametrize('reply, reason', [
    ('{"target": 1}', 'no grasp point'),
    ('{"grasp": 1}', 'no target point'),
    ('I cannot see a cube in the image.', 'no JSON object'),
    ('{"grasp": 1, "target": [1000, 10]}',
     r'target point \(499.8, 4.8\) lies outside the 320x240'),
    ('{"grasp": 1, "target": [-5, 10]}', 'outside'),
    ('{"grasp": 9, "target": 1}', 'no candidate 9 .candidates: 1-3'),
    ('{"grasp": 1, "target": "f3"}', 'no tile'),
    ('{"grasp": 1, "target": "c9"}', 'no tile'),
    ('{"grasp": 1, "target": "somewhere left"}', 'cannot read'),
    ('{"grasp": 1, "target": [NaN, 3]}', 'not a finite number'),
    ('{"grasp": 1, "target": [true, 3]}', 'expected a number'),
    ('{"grasp": 1, "target": 2.5}', 'cannot read'),
    ('{"grasp": 1, "target": {"tile": "a1", "view": "top"}}', "no view 'top'"),
    ('{"grasp": 1, "target": 2, "grasp_height": "above"}', 'grasp height: expected a number'),
    ('{"grasp": 1, "target": 2', 'no JSON object'),
])
def test_moka_json_rejects_malformed_replies_with_the_reason(reply, reason):
    with pytest.raises(ReplyError, match=reason):
        parse_moka_json(reply, _prompt())


def test_moka_json_uses_the_first_object_only():
    affordance = parse_moka_json('{"grasp": 1, "target": 2} {"grasp": 3, "target": 3}', _prompt())
    assert affordance.keypoints['grasp'].candidate == 1


# --- Qwen2.5-VL ----------------------------------------------------------------------------

def test_qwen_points_are_rescaled_from_the_resized_input():
    # the 640x480 front image resized by Qwen to 644x476 (46x34 patches)
    model_size = qwen_model_size((1, 34, 46))
    grasp = to_model_pixels(100.0, 50.0, SIZES['front'], model_size)
    target = to_model_pixels(250.0, 200.0, SIZES['front'], model_size)
    reply = ('```json\n[\n  {"point_2d": [%r, %r], "label": "Grasp point"},\n'
             '  {"point_2d": [%r, %r], "label": "target"}\n]\n```' % (*grasp, *target))
    affordance = parse_qwen_points(reply, _prompt(), 'front', model_size)
    assert _uv(affordance, 'grasp') == pytest.approx((100.0, 50.0))
    assert _uv(affordance, 'target') == pytest.approx((250.0, 200.0))
    assert affordance.backend == 'qwen2_5_vl'


def test_qwen_integer_points_and_box_centres():
    grasp = parse_qwen_points('[{"point_2d": [28, 14], "label": "grasp"}, '
                              '{"point_2d": [0, 0], "label": "target"}]', _prompt(), 'side',
                              (56, 28))
    assert _uv(grasp, 'grasp') == (28.5 * 200 / 56 - 0.5, 14.5 * 100 / 28 - 0.5)
    box = parse_qwen_points('[{"point_2d": [1, 1], "label": "grasp"}, '
                            '{"bbox_2d": [10, 4, 20, 8], "label": "Place"}]', _prompt(), 'side',
                            (56, 28))
    assert _uv(box, 'target') == (15.5 * 200 / 56 - 0.5, 6.5 * 100 / 28 - 0.5)


def test_qwen_reply_cut_off_by_the_token_budget_keeps_its_complete_points():
    reply = ('[{"point_2d": [10, 10], "label": "grasp"}, '
             '{"point_2d": [20, 20], "label": "target"}, {"point_2d": [30, ')
    affordance = parse_qwen_points(reply, _prompt(), 'side', (200, 100))
    assert set(affordance.keypoints) == {'grasp', 'target'}


@pytest.mark.parametrize('reply, reason', [
    ('[{"point_2d": [10, 10], "label": "grasp"}]', 'no target point'),
    ('[{"point_2d": [10, 10], "label": "red cube"}, {"point_2d": [1, 1], "label": "bowl"}]',
     r"no grasp and no target point \(labels read: \['red cube', 'bowl'\]\)"),
    ('[{"point_2d": [10, 10], "label": "grasp"}, {"point_2d": [201, 10], "label": "target"}]',
     "target point .* outside the 200x100 'side' image"),
    ('[{"point_2d": [10], "label": "grasp"}]', r'point_2d must be \[x, y\]'),
    ('[{"bbox_2d": [1, 2, 3], "label": "grasp"}]', 'bbox_2d must be'),
    ('[{"point_2d": ["left", 3], "label": "grasp"}]', 'expected a number'),
    ('The grasp point is at the handle.', 'no JSON point objects'),
])
def test_qwen_rejects_malformed_replies(reply, reason):
    with pytest.raises(ReplyError, match=reason):
        parse_qwen_points(reply, _prompt(), 'side', (200, 100))


# --- Molmo2 --------------------------------------------------------------------------------

def test_molmo_points_on_0_to_1000_with_and_without_an_image_index():
    reply = ('Sure. <points coords="1 1 500 250 2 900 900">grasp point</points> and '
             '<point coords="1 125 750" alt="target"/>')
    affordance = parse_molmo_points(reply, _prompt(), 'front')
    assert _uv(affordance, 'grasp') == (159.5, 59.5)
    assert _uv(affordance, 'target') == (39.5, 179.5)


def test_molmo_multi_image_groups_use_the_first_group_and_bare_pairs_are_read():
    reply = ('<points coords="1 1 100 200 2 500 500;2 3 900 900">the red cube</points>'
             '<points coords="0 1000">blue target</points>')
    aliases = {'red cube': 'grasp', 'blue target': 'target'}
    affordance = parse_molmo_points(reply, _prompt(), 'side', aliases=aliases)
    assert _uv(affordance, 'grasp') == (19.5, 19.5)
    assert _uv(affordance, 'target') == (-0.5, 99.5)


@pytest.mark.parametrize('reply, reason', [
    ('There are none.', 'no Molmo2'),
    ('<points coords="1 1 500 200 7">grasp</points>', 'cannot read Molmo2 coords'),
    ('<points coords="1 1 1500 200">grasp</points><points coords="1 1 1 1">target</points>',
     'grasp point .* outside'),
    ('<points coords="1 1 500 200">grasp</points>', 'no target'),
    ('<point/><points alt="grasp">x</points>', 'no Molmo2'),
])
def test_molmo_rejects_malformed_replies(reply, reason):
    with pytest.raises(ReplyError, match=reason):
        parse_molmo_points(reply, _prompt(), 'front')


# --- PaliGemma -----------------------------------------------------------------------------

def test_paligemma_box_centres_on_1024_bins_of_the_original_image():
    reply = ('<loc0256><loc0000><loc0768><loc0512> red cube ; '
             '<loc0000><loc0512><loc1023><loc1023> bowl')
    aliases = {'red cube': 'grasp', 'bowl': 'target'}
    affordance = parse_paligemma_boxes(reply, _prompt(), 'front', aliases=aliases)
    assert _uv(affordance, 'grasp') == (79.5, 119.5)
    assert _uv(affordance, 'target') == pytest.approx((767.5 / 1024 * 320 - 0.5,
                                                       511.5 / 1024 * 240 - 0.5))
    assert parse_paligemma_boxes('<loc0100> <loc0100> <loc0200> <loc0200> grasp;'
                                 '<loc0100><loc0100><loc0200><loc0200>target', _prompt(),
                                 'front').keypoints['target'].u == 150 / 1024 * 320 - 0.5


@pytest.mark.parametrize('reply, reason', [
    ('red cube ; bowl', 'no PaliGemma'),
    ('<loc0100><loc0100> grasp', 'no PaliGemma'),
    ('<loc2000><loc0100><loc0200><loc0200> grasp', 'bins run 0-1023'),
    ('<loc0100><loc0100><loc0200><loc0200> cube', 'no grasp'),
])
def test_paligemma_rejects_malformed_replies(reply, reason):
    with pytest.raises(ReplyError, match=reason):
        parse_paligemma_boxes(reply, _prompt(), 'front')


# --- Florence-2 ----------------------------------------------------------------------------

FLORENCE_REPLY = '</s><s>red cube<loc_0><loc_0><loc_499><loc_499>blue target<loc_500><loc_250>' \
                 '<loc_999><loc_749><loc_1><loc_1><loc_2><loc_2></s><pad>'
FLORENCE_ALIASES = {'red cube': 'grasp', 'blue target': 'target'}


def test_florence_raw_text_uses_bin_centres_of_the_first_box():
    affordance = parse_florence_locs(FLORENCE_REPLY, _prompt(), 'front', aliases=FLORENCE_ALIASES)
    assert _uv(affordance, 'grasp') == (80.0 - 0.5, 60.0 - 0.5)
    assert _uv(affordance, 'target') == (240.0 - 0.5, 120.0 - 0.5)
    spaced = parse_florence_locs('red cube <loc_0> <loc_0> <loc_499> <loc_499> blue target '
                                 '<loc_0><loc_0><loc_1><loc_1>', _prompt(), 'front',
                                 aliases=FLORENCE_ALIASES)
    assert _uv(spaced, 'grasp') == _uv(affordance, 'grasp')


def test_florence_post_processed_boxes_give_the_same_points_within_a_pixel():
    # what post_process_generation returns for FLORENCE_REPLY at image_size (320, 240):
    # dequantized edges truncated to whole pixels
    result = {'bboxes': [[0, 0, 159, 119], [160, 60, 319, 179], [0, 0, 0, 0]],
              'labels': ['red cube', 'blue target', 'blue target']}
    processed = parse_florence_result(result, _prompt(), 'front', FLORENCE_REPLY,
                                      aliases=FLORENCE_ALIASES)
    raw = parse_florence_locs(FLORENCE_REPLY, _prompt(), 'front', aliases=FLORENCE_ALIASES)
    for name in ('grasp', 'target'):
        assert math.dist(_uv(processed, name), _uv(raw, name)) <= 1.0
    assert processed.raw_reply == FLORENCE_REPLY


@pytest.mark.parametrize('reply, reason', [
    ('</s>', 'no Florence-2 phrase'),
    ('red cube<loc_1><loc_2>', 'no Florence-2 phrase'),
    ('red cube<loc_1><loc_2><loc_3><loc_1200>blue target<loc_1><loc_1><loc_2><loc_2>',
     'bins run 0-999'),
    ('bowl<loc_1><loc_2><loc_3><loc_4>',
     r"no grasp and no target point \(labels read: \['bowl'\]"),
])
def test_florence_rejects_malformed_replies(reply, reason):
    with pytest.raises(ReplyError, match=reason):
        parse_florence_locs(reply, _prompt(), 'front', aliases=FLORENCE_ALIASES)


def test_florence_result_without_boxes_is_a_reply_error():
    with pytest.raises(ReplyError, match='no boxes'):
        parse_florence_result({'bboxes': [], 'labels': []}, _prompt(), 'front')
