"""``reidgraph show``: ranked files and the features they ranked in, a picture (``.png``) or a page (``.html``) out."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .atomic import atomic_write
from .features import FeatureSet
from .ranked_lists import read_ranked
from .ranked_view import images_under, ranked_view

OUTPUTS = (".png", ".html")


def output_kind(path: str | Path) -> str:
    """``.png`` or ``.html``, by the extension of ``path``; a one-line error for another."""
    kind = Path(path).suffix.lower()
    if kind not in OUTPUTS:
        raise ValueError(f"--out {path}: unknown extension {Path(path).suffix or '(none)'!r}; end the name in .png "
                         "(a picture) or .html (a page with the images inside)")
    return kind


def show_ranked(out: str | Path, ranked: dict[str, str | Path], query_file: str | Path, gallery_file: str | Path,
                root: str | Path = ".", queries: int = 5, query_index: Sequence[int] | None = None, top: int = 10,
                format: str | None = None) -> tuple[Path, int]:
    """Draw ranked lists: each chosen query beside its ``top`` gallery images, one row per ranked file.

    Args:
        out: ``.png`` or ``.html`` file to write (whole or not at all).
        ranked: row name -> ranked file from ``reidgraph rerank`` (``.npz``, ``.csv``, ``.json``), all of the
            same query and gallery, e.g. ``{"before": ..., "after": ...}``.
        query_file, gallery_file: the features the files ranked, with ``paths`` (labels optional).
        root: the folder the features' image paths are relative to.
        queries: show the first this many queries (at most all), unless ``query_index`` is given.
        query_index: the query rows to show, in order.
        top: ranks shown per list, at most what the files hold.
        format: the features files' format (default: by extension).

    Returns:
        ``(out, number of queries shown)``.
    """
    kind = output_kind(out)
    sets = {name: FeatureSet.load(path, format=format, labels=False) for name, path in
            (("query", query_file), ("gallery", gallery_file))}
    images = {name: images_under(sets[name], f"{name} features {path}", root) for name, path in
              (("query", query_file), ("gallery", gallery_file))}
    lists = {name: read_ranked(path, sets["query"].paths, sets["gallery"].paths) for name, path in ranked.items()}
    num_query = len(sets["query"])
    if query_index is None:
        if queries < 1:
            raise ValueError(f"--queries {queries} is below 1; pass how many queries to show")
        chosen = list(range(min(queries, num_query)))
    else:
        chosen = list(query_index)
        bad = next((i for i in chosen if not 0 <= i < num_query), None)
        if bad is not None:
            raise ValueError(f"--query-index {bad} is outside [0, {num_query - 1}]: {query_file} holds "
                             f"{num_query} queries; pass row numbers in that range")
    if not chosen:
        raise ValueError(f"{query_file} holds no queries; pass the query features the ranked files were made from")
    held = min(index.shape[1] for index, _ in lists.values())
    if not 1 <= top <= held:
        raise ValueError(f"--top {top} is outside [1, {held}]: {', '.join(map(str, ranked.values()))} list "
                         f"{held} items per query; pass --top {held} or fewer")
    blocks = ranked_view(sets["query"], sets["gallery"], lists, chosen, top, images)
    if kind == ".png":
        from .visualize import ranked_lists_picture, save_picture

        return save_picture(ranked_lists_picture(blocks), out), len(chosen)
    from .ranked_page import ranked_lists_page

    title = "ranked lists: " + ", ".join(f"{name} {Path(path).name}" for name, path in ranked.items())
    with atomic_write(out, "w", encoding="utf-8") as f:
        f.write(ranked_lists_page(blocks, title=title))
    return Path(out), len(chosen)
