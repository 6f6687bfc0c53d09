"""
The lettered grid drawn over a prompt image, and the tiles' names (no imaging libraries).

The grid has ``(columns, rows)`` tiles: columns a, b, ... left to right, rows
1, 2, ... bottom to top, so ``'a1'`` is the bottom-left tile (MOKA). Pixel
``i``'s centre is at ``i``, so an image of width ``w`` spans ``[-0.5, w - 0.5]``.
"""

import string
from typing import Sequence

Size = tuple[int, int]


def grid_shape(grid: Sequence[int]) -> tuple[int, int]:
    """Return ``(columns, rows)`` or raise for grids the tile names cannot label."""
    columns, rows = grid
    if not (1 <= columns <= 26 and rows >= 1):
        raise ValueError(f'grid must have 1 to 26 columns and >= 1 rows, got {tuple(grid)}')
    return columns, rows


def tile_center(name: str, size: Size, grid: Sequence[int] = (5, 5)) -> tuple[float, float]:
    """Return the pixel ``(u, v)`` at the centre of tile ``name`` (e.g. ``'c3'``) of ``size``."""
    columns, rows = grid_shape(grid)
    tile = name.strip().lower()
    column = string.ascii_lowercase.find(tile[:1])
    row = int(tile[1:]) if tile[1:].isdigit() else -1
    if not (tile[:1].isalpha() and 0 <= column < columns and 1 <= row <= rows):
        raise ValueError(f'no tile {name!r} in a {columns}x{rows} grid '
                         f'(a1 .. {string.ascii_lowercase[columns - 1]}{rows})')
    width, height = size
    return (column + 0.5) * width / columns - 0.5, (rows - row + 0.5) * height / rows - 0.5


def tile_at(u: float, v: float, size: Size, grid: Sequence[int] = (5, 5)) -> str:
    """Return the name of the tile that holds pixel ``(u, v)`` of an image of size ``(w, h)``."""
    columns, rows = grid_shape(grid)
    width, height = size
    if not (-0.5 <= u <= width - 0.5 and -0.5 <= v <= height - 0.5):
        raise ValueError(f'pixel ({u}, {v}) is outside the {width}x{height} image')
    column = min(int((u + 0.5) * columns / width), columns - 1)
    row_from_top = min(int((v + 0.5) * rows / height), rows - 1)
    return f'{string.ascii_lowercase[column]}{rows - row_from_top}'
