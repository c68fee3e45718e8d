"""Ranked-list pictures, as in the paper's Figure 1: a query, its top-10 before and after FFGNN."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageOps

MATCH, MISS, QUERY = (40, 170, 60), (210, 50, 50), (60, 90, 200)


def _thumb(path: str, size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGB").resize(size)
    return ImageOps.expand(im, border=3, fill=colour)


def ranked_lists_picture(query_paths: Sequence[str], query_pids: Sequence[int], rows: dict[str, Sequence[Sequence[int]]],
                         gallery_paths: Sequence[str], gallery_pids: Sequence[int], top: int = 10,
                         size: tuple[int, int] = (48, 96)) -> Image.Image:
    """One block per query: its image, then one row of its top gallery images per method.

    Args:
        query_paths, query_pids: the queries shown.
        rows: method name -> ``[num_queries][>= top]`` gallery indices, best first.
        gallery_paths, gallery_pids: the gallery.
        top: ranks shown per row.
        size: thumbnail (width, height).

    Returns:
        An RGB image; borders are green for a true match, red otherwise, blue for the query.
    """
    w, h = size[0] + 6, size[1] + 6
    label_w, gap = 70, 8
    names = list(rows)
    block = len(names) * h + gap
    canvas = Image.new("RGB", (label_w + w + gap + top * w, len(query_paths) * block + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for q, (qpath, qpid) in enumerate(zip(query_paths, query_pids)):
        y0 = gap + q * block
        canvas.paste(_thumb(qpath, size, QUERY), (label_w, y0))
        for r, name in enumerate(names):
            y = y0 + r * h
            draw.text((4, y + h // 2 - 6), name, fill="black")
            for rank, g in enumerate(list(rows[name][q])[:top]):
                colour = MATCH if gallery_pids[g] == qpid else MISS
                canvas.paste(_thumb(gallery_paths[g], size, colour), (label_w + w + gap + rank * w, y))
    return canvas


def save_picture(image: Image.Image, path: str | Path) -> Path:
    """Save ``image`` as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
