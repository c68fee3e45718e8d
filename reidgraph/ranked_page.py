"""Ranked lists as one self-contained HTML page: every thumbnail embedded as a ``data:`` URI, nothing fetched.

The page opens from disk in any browser. It holds one table row (``<tr class="query">``) per query: the
query's tile, then one line of gallery tiles per ranked list, as in :mod:`reidgraph.visualize`.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Sequence

from .ranked_view import FRAMES, QueryBlock, Tile
from .visualize import BORDER, thumbnail

STYLE = """
body {{ font: 13px sans-serif; margin: 8px; background: #fff; color: #000; }}
table {{ border-collapse: collapse; }}
td {{ vertical-align: top; padding: 4px; }}
tr.query {{ border-bottom: 1px solid #ddd; }}
.list {{ white-space: nowrap; }}
.name {{ display: inline-block; width: 60px; vertical-align: top; padding-top: {middle}px; }}
figure {{ display: inline-block; margin: 0 2px; vertical-align: top; width: {width}px; }}
img {{ display: block; width: {w}px; height: {h}px; border: {border}px solid; }}
figcaption {{ font: 10px/12px monospace; white-space: pre; overflow: hidden; }}
.legend span {{ border: {border}px solid; padding: 0 4px; margin-right: 6px; }}
"""


def ranked_lists_page(blocks: Sequence[QueryBlock], size: tuple[int, int] = (64, 128),
                      title: str = "ranked lists") -> str:
    """The page (see the module docstring) as text.

    Args:
        blocks: the queries, from :func:`~reidgraph.ranked_view.ranked_view`; every block has the same lists.
        size: thumbnail (width, height) in pixels.
        title: the page's title and heading.
    """
    w, h = size
    frames = "".join(f".{css(kind)} img, .legend .{css(kind)} {{ border-color: rgb{colour}; }}\n"
                     for kind, colour in FRAMES.items())
    style = STYLE.format(middle=h // 2, width=w + 2 * BORDER, w=w, h=h, border=BORDER) + frames
    legend = " ".join(f'<span class="{css(kind)}">{kind}</span>' for kind in FRAMES)
    encoded: dict[str, str] = {}  # one encoding per image file, however often it is shown
    rows = []
    for block in blocks:
        lists = "".join(f'<div class="list"><span class="name">{html.escape(name)}</span>'
                        + "".join(figure(tile, size, encoded) for tile in tiles) + "</div>"
                        for name, tiles in block.lists.items())
        rows.append(f'<tr class="query"><td class="query-tile">{figure(block.query, size, encoded)}</td>'
                    f'<td class="lists">{lists}</td></tr>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{style}</style></head>\n<body>"
            f"<h1>{html.escape(title)}</h1><p class=\"legend\">frames: {legend}</p>\n<table>\n"
            + "\n".join(rows) + "\n</table>\n</body></html>\n")


def css(kind: str) -> str:
    """A tile kind as a CSS class name."""
    return kind.replace("-", "")


def figure(tile: Tile, size: tuple[int, int], encoded: dict[str, str]) -> str:
    """One framed thumbnail with its caption; ``encoded`` caches each file's data URI."""
    if tile.path not in encoded:
        buffer = io.BytesIO()
        thumbnail(tile.path, size).save(buffer, format="JPEG", quality=90)
        encoded[tile.path] = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = html.escape("\n".join(tile.lines))
    return (f'<figure class="{css(tile.kind)}"><img src="{encoded[tile.path]}" alt="{html.escape(tile.kind)}">'
            f"<figcaption>{caption}</figcaption></figure>")
