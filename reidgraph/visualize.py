"""Ranked-list pictures (PNG), as in the paper's Figure 1: each query beside its top-k, one row per ranked list.

Each block of :func:`ranked_lists_picture` is one query: its tile on the left, then one row of gallery
tiles per ranked list, a rank per column, so two lists (before / after re-ranking) line up rank by rank.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageOps

from .atomic import atomic_write
from .ranked_view import CAPTION_LINES, FRAMES, QueryBlock, Tile

BORDER, LINE, GAP, LABEL_WIDTH = 3, 12, 8, 70
"""Frame width, caption line height, gap between blocks, width of the list names (pixels)."""


@dataclass(frozen=True)
class Layout:
    """Where each tile of a picture goes.

    Attributes:
        size: thumbnail (width, height); a tile adds its frame, :data:`BORDER` on each side.
        top: ranks per row.
        lists: rows per query block.
    """

    size: tuple[int, int]
    top: int
    lists: int

    @property
    def cell(self) -> tuple[int, int]:
        """A tile with its caption and spacing: (width, height)."""
        return self.size[0] + 2 * BORDER + 4, self.size[1] + 2 * BORDER + CAPTION_LINES * LINE + 4

    def query_corner(self, q: int) -> tuple[int, int]:
        """The top-left pixel (x, y) of the ``q``-th block's query frame."""
        return LABEL_WIDTH, GAP + q * (self.lists * self.cell[1] + GAP)

    def tile_corner(self, q: int, row: int, rank: int) -> tuple[int, int]:
        """The top-left pixel (x, y) of the frame at 0-based ``rank`` in list ``row`` of block ``q``."""
        x, y = self.query_corner(q)
        return x + self.cell[0] + GAP + rank * self.cell[0], y + row * self.cell[1]

    def canvas(self, blocks: int) -> tuple[int, int]:
        """The picture's (width, height) for ``blocks`` queries."""
        return self.tile_corner(0, 0, self.top)[0] + GAP, self.query_corner(blocks)[1]


def thumbnail(path: str, size: tuple[int, int]) -> Image.Image:
    """The RGB image at ``path`` resized to ``size`` (width, height)."""
    with Image.open(path) as im:
        return im.convert("RGB").resize(size)


def ranked_lists_picture(blocks: Sequence[QueryBlock], size: tuple[int, int] = (64, 128)) -> Image.Image:
    """One block per query (see the module docstring); frames coloured as :data:`~reidgraph.ranked_view.FRAMES`.

    Args:
        blocks: the queries, from :func:`~reidgraph.ranked_view.ranked_view`; every block has the same lists.
        size: thumbnail (width, height).

    Returns:
        An RGB image of :meth:`Layout.canvas` size.
    """
    names = list(blocks[0].lists)
    layout = Layout(size, max(len(tiles) for block in blocks for tiles in block.lists.values()), len(names))
    canvas = Image.new("RGB", layout.canvas(len(blocks)), "white")
    draw = ImageDraw.Draw(canvas)
    thumbs: dict = {}  # path -> thumbnail: an image in several lists (or blocks) is decoded once
    for q, block in enumerate(blocks):
        paste(canvas, draw, block.query, layout.query_corner(q), size, thumbs)
        for row, name in enumerate(names):
            _, y = layout.tile_corner(q, row, 0)
            draw.text((4, y + size[1] // 2), name, fill="black")
            for rank, tile in enumerate(block.lists[name]):
                paste(canvas, draw, tile, layout.tile_corner(q, row, rank), size, thumbs)
    return canvas


def paste(canvas: Image.Image, draw: ImageDraw.ImageDraw, tile: Tile, corner: tuple[int, int],
          size: tuple[int, int], thumbs: dict | None = None) -> None:
    """Draw ``tile`` framed with its top-left corner at ``corner``, its caption below; ``thumbs`` (path ->
    thumbnail) keeps the thumbnails already made, to reuse."""
    thumbs = {} if thumbs is None else thumbs
    if tile.path not in thumbs:
        thumbs[tile.path] = thumbnail(tile.path, size)
    canvas.paste(ImageOps.expand(thumbs[tile.path], border=BORDER, fill=FRAMES[tile.kind]), corner)
    x, y = corner[0], corner[1] + size[1] + 2 * BORDER + 1
    for n, line in enumerate(tile.lines):
        draw.text((x, y + n * LINE), line, fill="black")


def save_picture(image: Image.Image, path: str | Path) -> Path:
    """Save ``image`` as PNG, creating the folder; the file appears whole or not at all."""
    with atomic_write(path, "wb") as f:
        image.save(f, format="PNG")
    return Path(path)
