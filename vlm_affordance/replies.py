"""
Parse model replies into affordances, one lenient but validated parser per reply format.

Models answer in their own coordinate frame: pixels of the image they resized
the view to (Qwen2.5-VL), or a fixed normalised range (Molmo2 0-1000, PaliGemma
/1024, Florence-2 1000 bins). Every parser returns keypoints in pixels of the
ORIGINAL view, so a wrong frame shows up here and nowhere else. Pixels follow
:mod:`.prompting`: pixel ``i``'s centre is at ``i``, an image of width ``w``
spans ``[-0.5, w - 0.5]``. Labels are matched to :data:`KEYPOINT_NAMES`
loosely (case, spaces, synonyms such as 'place' for target); a reply must name
:data:`REQUIRED_KEYPOINTS` with finite points inside the image, else
:class:`ReplyError` says what is wrong.
"""

import json
import math
import re
import string
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

from .affordance import (Affordance, Candidate, Keypoint, KEYPOINT_NAMES, Prompt, ReplyError,
                         REQUIRED_KEYPOINTS)
from .grid import Size, tile_center

#: Phrase -> keypoint name(s), for replies labelled with the objects a backend asked about.
Aliases = Mapping[str, Union[str, Sequence[str]]]

_SYNONYMS = {
    'grasp': 'grasp', 'grasping': 'grasp', 'grip': 'grasp', 'grab': 'grasp', 'pick': 'grasp',
    'pick_up': 'grasp', 'pickup': 'grasp', 'contact': 'grasp',
    'target': 'target', 'place': 'target', 'placement': 'target', 'placing': 'target',
    'goal': 'target', 'destination': 'target', 'drop': 'target', 'release': 'target',
    'pre_contact': 'pre_contact', 'precontact': 'pre_contact', 'pre_grasp': 'pre_contact',
    'approach': 'pre_contact',
    'post_contact': 'post_contact', 'postcontact': 'post_contact',
    'function': 'function', 'functional': 'function', 'tool': 'function',
    'tool_tip': 'function',
}
_SUFFIXES = ('_keypoint', '_point', '_tile', '_location', '_position', '_pixel')
_ABSENT = ('', 'none', 'null', 'n/a', 'na')


class RawPoint(NamedTuple):
    """One labelled point a parser read, already in original pixels of ``view``."""

    label: str
    view: str
    u: float
    v: float
    candidate: Optional[int] = None
    height: Optional[float] = None


def _words(label: str) -> str:
    """Return ``label`` lower-cased with every run of non-alphanumerics as one underscore."""
    return re.sub(r'[^a-z0-9]+', '_', label.lower()).strip('_')


def _phrase(label: str) -> str:
    """Return :func:`_words` of ``label`` without a leading article."""
    return re.sub(r'^(the|a|an)_', '', _words(label))


def keypoint_names(label: str, aliases: Optional[Aliases] = None) -> tuple[str, ...]:
    """
    Return the keypoint name(s) a reply label means, or ``()`` for an unrelated label.

    ``aliases`` (phrase -> name or names) come first: a detector answers with the
    object phrases it was asked about, not with keypoint names.
    """
    words = _phrase(label)
    for phrase, names in (aliases or {}).items():
        if _phrase(phrase) == words:
            return (names,) if isinstance(names, str) else tuple(names)
    for suffix in _SUFFIXES:
        if words.endswith(suffix) and len(words) > len(suffix):
            words = words[:-len(suffix)]
            break
    name = _SYNONYMS.get(words)
    return (name,) if name else ()


def to_model_pixels(u: float, v: float, original_size: Size,
                    model_size: Size) -> tuple[float, float]:
    """Return the pixel of the image resized to ``model_size`` that shows original ``(u, v)``."""
    (width, height), (model_width, model_height) = original_size, model_size
    return ((u + 0.5) * model_width / width - 0.5, (v + 0.5) * model_height / height - 0.5)


def to_original_pixels(x: float, y: float, model_size: Size,
                       original_size: Size) -> tuple[float, float]:
    """Return the original pixel shown at ``(x, y)`` of the image resized to ``model_size``."""
    return to_model_pixels(x, y, model_size, original_size)


def from_normalized(x: float, y: float, scale: float, original_size: Size) -> tuple[float, float]:
    """Return the original pixel at ``(x, y)`` given on ``0..scale`` from edge to edge."""
    width, height = original_size
    return x / scale * width - 0.5, y / scale * height - 0.5


def qwen_model_size(image_grid_thw: Sequence[int], patch_size: int = 14) -> Size:
    """Return ``(width, height)`` of the resized image behind a Qwen2.5-VL ``(t, h, w)`` grid."""
    _, rows, columns = (int(n) for n in image_grid_thw)
    return columns * patch_size, rows * patch_size


def tile_centre(tile: str, size: Size, grid: Sequence[int] = (5, 5)) -> tuple[float, float]:
    """Return the pixel at the centre of grid tile ``tile`` (:func:`.grid.tile_center`)."""
    try:
        return tile_center(tile, size, grid)
    except ValueError as err:
        raise ReplyError(str(err)) from None


def _number(value: Any, what: str) -> float:
    """Return ``value`` as a finite float, or raise :class:`ReplyError` naming ``what``."""
    if isinstance(value, bool):
        raise ReplyError(f'{what}: expected a number, got {value!r}')
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReplyError(f'{what}: expected a number, got {value!r}') from None
    if not math.isfinite(number):
        raise ReplyError(f'{what}: {value!r} is not a finite number')
    return number


def _strict_json(text: str, start: int) -> tuple[str, int]:
    """
    Return strict JSON for the object or list opening at ``text[start]`` and where it ends.

    Drops ``//``, ``#`` and ``/* */`` comments and trailing commas and turns
    single-quoted strings into double-quoted ones, all outside strings only.
    """
    out: list[str] = []
    closers: list[str] = []
    quote = ''
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == '\\' and i + 1 < len(text):
                pair = text[i:i + 2]
                out.append("'" if pair == "\\'" else pair)
                i += 2
                continue
            out.append('"' if char == quote else '\\"' if char == '"' else
                       '\\n' if char == '\n' else char)
            quote = '' if char == quote else quote
        elif char in '"\'':
            quote = char
            out.append('"')
        elif char == '#' or text.startswith('//', i):
            end = text.find('\n', i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith('/*', i):
            end = text.find('*/', i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        elif char in '{[':
            closers.append('}' if char == '{' else ']')
            out.append(char)
        elif char in '}]':
            if char != closers.pop():
                raise ReplyError(f'mismatched {char!r} at character {i}')
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ',':
                out.pop()
            out.append(char)
            if not closers:
                return ''.join(out), i + 1
        else:
            out.append(char)
        i += 1
    raise ReplyError('the JSON in the reply is cut off (unbalanced brackets)')


def json_values(reply: str, openers: str = '{[') -> list[Any]:
    """
    Return every JSON value that opens with one of ``openers`` in ``reply``, in order.

    Prose, code fences and comments around or inside the JSON are skipped; a
    value that does not parse is skipped too, so the objects inside a cut-off
    list are still found.
    """
    values = []
    i = 0
    while i < len(reply):
        if reply[i] not in openers:
            i += 1
            continue
        try:
            text, end = _strict_json(reply, i)
            values.append(json.loads(text))
        except (ReplyError, ValueError):
            i += 1
            continue
        i = end
    return values


def build_affordance(points: Iterable[RawPoint], prompt: Prompt, backend: str, reply: str,
                     aliases: Optional[Aliases] = None) -> Affordance:
    """
    Return the affordance of labelled points after checking them against the prompt.

    The first point for a keypoint name wins; labels that name no keypoint are
    ignored. Raises :class:`ReplyError` for a required keypoint that is
    missing, a non-finite point or one outside its view.
    """
    keypoints: dict[str, Keypoint] = {}
    labels = []
    for point in points:
        labels.append(point.label)
        for name in keypoint_names(point.label, aliases):
            if name in keypoints:
                continue
            if point.view not in prompt.images:
                raise ReplyError(f'{name} point is on view {point.view!r}, '
                                 f'the prompt has {sorted(prompt.images)}')
            width, height = prompt.size_of(point.view)
            u, v = _number(point.u, f'{name} u'), _number(point.v, f'{name} v')
            if not (-0.5 <= u <= width - 0.5 and -0.5 <= v <= height - 0.5):
                raise ReplyError(f'{name} point ({u:.1f}, {v:.1f}) lies outside the '
                                 f'{width}x{height} {point.view!r} image')
            height_m = None if point.height is None else _number(point.height, f'{name} height')
            keypoints[name] = Keypoint(name, point.view, u, v, candidate=point.candidate,
                                       height=height_m)
    missing = [name for name in REQUIRED_KEYPOINTS if name not in keypoints]
    if missing:
        raise ReplyError(f'the reply names no {" and no ".join(missing)} point '
                         f'(labels read: {labels or "none"})')
    ordered = {name: keypoints[name] for name in KEYPOINT_NAMES if name in keypoints}
    return Affordance(ordered, backend, reply)


def _candidate(number: int, prompt: Prompt, what: str) -> Candidate:
    """Return the prompt's candidate ``number`` or say which numbers exist."""
    for candidate in prompt.candidates:
        if candidate.number == number:
            return candidate
    known = [c.number for c in prompt.candidates]
    raise ReplyError(f'{what}: there is no candidate {number} '
                     f'(candidates: {f"{min(known)}-{max(known)}" if known else "none"})')


def _moka_point(label: str, value: Any, prompt: Prompt, view: str) -> Optional[RawPoint]:
    """Read one MOKA value (candidate number, ``[u, v]``, tile or a dict of those), or None."""
    if isinstance(value, dict):
        fields = {_words(key): item for key, item in value.items()}
        view = str(fields.pop('view', view))
        height = fields.pop('height', None)
        for key in ('candidate', 'number', 'point', 'uv', 'pixel', 'tile'):
            if key in fields:
                point = _moka_point(label, fields[key], prompt, view)
                return None if point is None else point._replace(height=height)
        raise ReplyError(f'{label}: no candidate, point or tile in {value!r}')
    if value is None or (isinstance(value, str) and value.strip().lower() in _ABSENT):
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        if view not in prompt.images:
            raise ReplyError(f'{label}: no view {view!r} in the prompt ({sorted(prompt.images)})')
        shown_height, shown_width = prompt.images[view].shape[:2]
        x, y = (_number(item, label) for item in value)
        u, v = to_original_pixels(x, y, (shown_width, shown_height), prompt.size_of(view))
        return RawPoint(label, view, u, v)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ReplyError(f'{label}: cannot read {value!r} as a candidate number, [u, v] or tile')
    text = str(value).strip()
    tile = re.fullmatch(r'([a-zA-Z])\s*(\d+)', text)
    if tile and string.ascii_lowercase.find(tile[1].lower()) < prompt.grid[0]:
        if view not in prompt.images:
            raise ReplyError(f'{label}: no view {view!r} in the prompt ({sorted(prompt.images)})')
        u, v = tile_centre(tile[1] + tile[2], prompt.size_of(view), prompt.grid)
        return RawPoint(label, view, u, v)
    number = re.fullmatch(r'(?:#|p|pt|point|candidate)?\s*(\d+)(?:\.0*)?', text, re.IGNORECASE)
    if number:
        candidate = _candidate(int(number[1]), prompt, label)
        return RawPoint(label, candidate.view, candidate.u, candidate.v, candidate.number)
    if tile:  # a tile beyond the grid's columns: say which tiles there are
        tile_centre(text, prompt.size_of(view), prompt.grid)
    raise ReplyError(f'{label}: cannot read {value!r} as a candidate number, [u, v] or tile')


def default_view(prompt: Prompt) -> str:
    """Return ``'front'`` when the prompt has it, else its first view."""
    if not prompt.images:
        raise ReplyError('the prompt has no images')
    return 'front' if 'front' in prompt.images else next(iter(prompt.images))


def parse_moka_json(reply: str, prompt: Prompt, backend: str = 'moka_json',
                    view: Optional[str] = None) -> Affordance:
    """
    Return the affordance in a MOKA-style JSON reply (what text-only pointing models answer).

    The first JSON object maps keypoint names to a candidate number (``3``,
    ``"P3"``), a pixel ``[u, v]`` of the prompt image shown for ``view``, a
    grid tile (``"c3"``) of ``view``, or a dict of one of those with an
    optional ``view`` and ``height`` (metres); ``<name>_height`` keys give
    heights too. ``view`` defaults to :func:`default_view`.
    """
    view = view or default_view(prompt)
    objects = [value for value in json_values(reply, '{') if isinstance(value, dict)]
    if not objects:
        raise ReplyError('no JSON object in the reply')
    points, heights = [], {}
    for key, value in objects[0].items():
        words = _words(str(key))
        if words.endswith('_height'):
            for name in keypoint_names(words[:-len('_height')]):
                heights[name] = value
            continue
        if keypoint_names(str(key)):
            point = _moka_point(str(key), value, prompt, view)
            if point is not None:
                points.append(point)
    for index, point in enumerate(points):
        for name in keypoint_names(point.label):
            if point.height is None and name in heights:
                points[index] = point._replace(height=heights[name])
    return build_affordance(points, prompt, backend, reply)


def parse_qwen_points(reply: str, prompt: Prompt, view: str, model_size: Size,
                      backend: str = 'qwen2_5_vl',
                      aliases: Optional[Aliases] = None) -> Affordance:
    """
    Return the affordance in a Qwen2.5-VL grounding reply.

    Qwen2.5-VL answers a JSON list of ``{"point_2d": [x, y], "label": ...}``
    (or ``"bbox_2d": [x0, y0, x1, y1]``, whose centre is used) in absolute
    pixels of the image it was fed after resizing: ``model_size`` (w, h), see
    :func:`qwen_model_size`.
    """
    items = []
    for value in json_values(reply):
        items.extend(item for item in (value if isinstance(value, list) else [value])
                     if isinstance(item, dict))
    if not items:
        raise ReplyError('no JSON point objects in the reply')
    points = []
    for item in items:
        label = str(item.get('label', ''))
        if 'point_2d' in item:
            coords = item['point_2d']
        elif 'bbox_2d' in item:
            box = item['bbox_2d']
            if not isinstance(box, list) or len(box) != 4:
                raise ReplyError(f'{label}: bbox_2d must be [x0, y0, x1, y1], got {box!r}')
            x0, y0, x1, y1 = (_number(n, f'{label} bbox_2d') for n in box)
            coords = [(x0 + x1) / 2, (y0 + y1) / 2]
        else:
            continue
        if not isinstance(coords, list) or len(coords) != 2:
            raise ReplyError(f'{label}: point_2d must be [x, y], got {coords!r}')
        x, y = (_number(n, f'{label} point_2d') for n in coords)
        points.append(RawPoint(label, view, *to_original_pixels(x, y, model_size,
                                                                prompt.size_of(view))))
    return build_affordance(points, prompt, backend, reply, aliases)


_MOLMO_TAG = re.compile(r'<points?\b([^>]*?)\s*/>|<points?\b([^>]*)>(.*?)</points?>',
                        re.IGNORECASE | re.DOTALL)
_ATTRIBUTE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def _molmo_xy(coords: str, label: str) -> tuple[float, float]:
    """Return the first ``(x, y)`` of a Molmo2 ``coords`` attribute (0-1000)."""
    group = coords.split(';')[0].split()
    if len(group) == 2:
        pairs = group
    elif len(group) >= 3 and len(group) % 3 == 0:
        pairs = group[1:3]
    elif len(group) >= 4 and len(group) % 3 == 1:
        pairs = group[2:4]
    else:
        raise ReplyError(f'{label}: cannot read Molmo2 coords {coords!r}')
    x, y = (_number(n, f'{label} coords') for n in pairs)
    return x, y


def parse_molmo_points(reply: str, prompt: Prompt, view: str, backend: str = 'molmo2',
                       aliases: Optional[Aliases] = None) -> Affordance:
    """
    Return the affordance in a Molmo2 pointing reply.

    Molmo2 writes ``<points coords="1 1 x y 2 x y">label</points>``: an image
    (or frame) index, then point index and ``x y`` on 0-1000 per point; groups
    for further images follow after ``;``. ``coords="1 x y"`` (no image index),
    ``<point ...>`` and a self-closing tag with ``alt="label"`` are read too.
    The first point of each label is used.
    """
    points = []
    for match in _MOLMO_TAG.finditer(reply):
        attributes = {key.lower(): value
                      for key, value in _ATTRIBUTE.findall(match[1] or match[2] or '')}
        if 'coords' not in attributes:
            continue
        label = (match[3] or '').strip() or attributes.get('alt', '')
        x, y = _molmo_xy(attributes['coords'], label)
        points.append(RawPoint(label, view, *from_normalized(x, y, 1000, prompt.size_of(view))))
    if not points:
        raise ReplyError('no Molmo2 <points coords="..."> in the reply')
    return build_affordance(points, prompt, backend, reply, aliases)


_PALIGEMMA_BOX = re.compile(r'<loc(\d{4})>\s*' * 4 + r'([^;<]*)')


def parse_paligemma_boxes(reply: str, prompt: Prompt, view: str, backend: str = 'paligemma',
                          aliases: Optional[Aliases] = None) -> Affordance:
    """
    Return the affordance in a PaliGemma ``detect`` reply, one box centre per label.

    PaliGemma writes ``<locY0><locX0><locY1><locX1> label`` segments joined by
    ``;``, each coordinate a 4-digit bin of 1024 across the whole image.
    """
    points = []
    for match in _PALIGEMMA_BOX.finditer(reply):
        y0, x0, y1, x1 = (int(match[i]) for i in range(1, 5))
        if max(y0, x0, y1, x1) > 1023:
            raise ReplyError(f'{match[5].strip()}: location bins run 0-1023, got {match[0]!r}')
        centre = from_normalized((x0 + x1) / 2, (y0 + y1) / 2, 1024, prompt.size_of(view))
        points.append(RawPoint(match[5].strip(), view, *centre))
    if not points:
        raise ReplyError('no PaliGemma <locNNNN> boxes in the reply')
    return build_affordance(points, prompt, backend, reply, aliases)


_FLORENCE_PHRASE = re.compile(r'([^<]+)((?:\s*<loc_\d+>){4,})')
_FLORENCE_LOC = re.compile(r'<loc_(\d+)>')


def parse_florence_locs(reply: str, prompt: Prompt, view: str, backend: str = 'florence2',
                        aliases: Optional[Aliases] = None) -> Affordance:
    """
    Return the affordance in raw Florence-2 grounding text, one box centre per phrase.

    Florence-2 writes ``phrase<loc_x0><loc_y0><loc_x1><loc_y1>...``: bins 0-999
    across the image, each meaning the centre of its bin (as the processor's
    ``post_process_generation`` dequantizes them).
    """
    text = reply.replace('<s>', '').replace('</s>', '').replace('<pad>', '')
    points = []
    for match in _FLORENCE_PHRASE.finditer(text):
        label = match[1].strip()
        x0, y0, x1, y1 = (int(n) for n in _FLORENCE_LOC.findall(match[2])[:4])
        if max(x0, y0, x1, y1) > 999:
            raise ReplyError(f'{label}: location bins run 0-999, got {match[2]!r}')
        centre = from_normalized((x0 + x1) / 2 + 0.5, (y0 + y1) / 2 + 0.5, 1000,
                                 prompt.size_of(view))
        points.append(RawPoint(label, view, *centre))
    if not points:
        raise ReplyError('no Florence-2 phrase with <loc_N> boxes in the reply')
    return build_affordance(points, prompt, backend, reply, aliases)


def parse_florence_result(result: Mapping[str, Any], prompt: Prompt, view: str, reply: str = '',
                          backend: str = 'florence2',
                          aliases: Optional[Aliases] = None) -> Affordance:
    """
    Return the affordance in Florence-2's ``post_process_generation`` answer for one task.

    ``result`` holds ``labels`` and ``bboxes`` ``[x0, y0, x1, y1]``, dequantized
    with the ORIGINAL ``image_size``: the processor truncates each bin's centre
    to a whole pixel, which names the pixel it falls in, so the values are
    taken as pixel indices (within half a pixel of :func:`parse_florence_locs`).
    """
    boxes, labels = result.get('bboxes', []), result.get('labels', [])
    if not boxes:
        raise ReplyError('Florence-2 found no boxes in the reply')
    points = []
    for box, label in zip(boxes, labels):
        x0, y0, x1, y1 = (_number(n, f'{label} bbox') for n in box)
        points.append(RawPoint(str(label), view, (x0 + x1) / 2, (y0 + y1) / 2))
    return build_affordance(points, prompt, backend, reply, aliases)
