r"""Approximate k-nearest-neighbor search by cosine similarity, for galleries past exact search.

An :class:`AnnIndex` holds a gallery's L2-normalised features in a faiss index
searched by inner product, so a similarity is the cosine
:math:`q^\top g_j / (\lVert q\rVert\,\lVert g_j\rVert)`, as in
:func:`~reidgraph.graph.knn`. Two kinds:

* ``"ivf"``: ``faiss.IndexIVFFlat`` (Jégou, Douze and Schmid, "Product
  quantization for nearest neighbor search", TPAMI 2011, §IV-A): k-means
  splits the gallery into ``nlist`` cells; a query scans the ``nprobe`` cells
  whose centroids are most similar to it. ``nprobe = nlist`` is exact search.
* ``"hnsw"``: ``faiss.IndexHNSWFlat`` (Malkov and Yashunin, "Efficient and
  robust approximate nearest neighbor search using Hierarchical Navigable Small
  World graphs", TPAMI 2020): a greedy best-first walk over a layered graph of
  ``M`` links per item, keeping ``ef_search`` candidates.

Both keep the float32 vectors, so the similarity of each item found is exact;
only which items are found is approximate. Build once, save, reload:

    index = AnnIndex.build(gallery, "ivf")      # gallery [G, D]
    index.save("gallery.ann")
    index = AnnIndex.load("gallery.ann", dim=D, size=G)
    sims, idx = index.search(query, 150)        # [Q, 150] each, best first
    # or through knn: knn(query, gallery, 150, backend="ivf", ann=index)
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .._checks import as_features, int_in_range
from ..atomic import atomic_write
from .exclusion import drop_excluded, exclusions
from .optional import faiss_module

KINDS = ("ivf", "hnsw")
_MAGIC = b"reidgraph-ann-index\n"
_FORMAT = 1
_METRIC = "cosine"
# who needs faiss, in the error where it is missing
_USER = "approximate kNN (ivf, hnsw)"
# faiss's k-means wants at least 39 training points per centroid.
_POINTS_PER_CELL = 39
# The nprobe=None rule: scan about this many gallery items per neighbor asked for, and at
# least _NPROBE_FLOOR cells. Chosen on the CUHK03 train features of both shared models
# (benchmarks/ann_defaults.py: held-out train ids plus the other train images as distractors,
# three splits): 30 items per neighbor gives recall@150 >= 0.996 but moves fusion-paper's mAP
# by up to 0.10 points; 60 is exact there. Past about 300,000 images the floor decides.
_SCAN_PER_NEIGHBOUR = 60
_NPROBE_FLOOR = 64
# The ef_search=None rule: 2 k candidates, at least _EF_FLOOR; on the same features recall@k >= 0.997
# for k = 10 to 150.
_EF_FLOOR = 64


@dataclass(frozen=True)
class IVFSettings:
    """Settings of an ``"ivf"`` index.

    Args:
        nlist: k-means cells; ``None``: :math:`4\\sqrt{G}`, at most ``G // 39``
            (faiss's minimum of training points per cell) and 65,536.
        nprobe: cells scanned per query, ``1 <= nprobe <= nlist``; ``None``: per
            search, enough cells to hold about ``60 k`` items, at least 64, at
            most ``nlist`` (so galleries of up to ``60 k`` items, and all under
            about 2,500, are searched exactly).
        train_size: gallery rows sampled to train k-means, ``nlist <= train_size <= G``;
            ``None``: ``min(G, 50 nlist)``.
        seed: seed of the training sample and of k-means.
    """

    nlist: int | None = None
    nprobe: int | None = None
    train_size: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class HNSWSettings:
    """Settings of an ``"hnsw"`` index.

    Args:
        M: graph links per item (memory ``2 M`` int32 per item on the bottom layer). (default: ``32``)
        ef_construction: candidates kept while inserting an item. (default: ``128``; on the
            train features 40 and 80 do as well, but on a generated 200,000-image gallery
            recall@150 at ``ef_search=300`` is 0.952 with 40, 0.997 with 80, 0.999 with 120)
        ef_search: candidates kept while searching; ``None``: ``2 k`` per search, at least 64
            (recall@k >= 0.997 for k = 10 to 150 on the CUHK03 train features of both shared models).
            faiss keeps at least ``k`` whatever is set.

    HNSW inserts in parallel, so two builds of the same gallery may differ
    slightly; a saved index gives the same results every time it is loaded.
    """

    M: int = 32
    ef_construction: int = 128
    ef_search: int | None = None


Settings = IVFSettings | HNSWSettings
_SETTINGS = {"ivf": IVFSettings, "hnsw": HNSWSettings}


def ann_settings(kind: str, settings: Settings | dict[str, Any] | None = None) -> Settings:
    """``settings`` of an index of ``kind`` as its dataclass (from a dict of its fields, or the defaults)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is unknown; choose one of {', '.join(KINDS)}")
    cls = _SETTINGS[kind]
    if settings is None:
        return cls()
    if isinstance(settings, dict):
        names = [f.name for f in fields(cls)]
        unknown = [key for key in settings if key not in names]
        if unknown:
            raise ValueError(f"{kind} index has no setting {unknown[0]!r}; it takes: {', '.join(names)}")
        return cls(**settings)
    if not isinstance(settings, cls):
        raise ValueError(f"settings for a {kind} index must be {cls.__name__} or a dict, got {type(settings).__name__}")
    return settings


class AnnIndex:
    """An approximate cosine kNN index over a gallery ``[G, D]`` (see the module docstring).

    Make one with :meth:`build` or :meth:`load`.

    Attributes:
        kind: ``"ivf"`` or ``"hnsw"``.
        settings: its :class:`IVFSettings` (``nlist``, ``train_size`` resolved) or :class:`HNSWSettings`.
        dim: ``D``; size: ``G``, the gallery items it holds, in gallery order.
        path: the file it was loaded from or last saved to, else ``None``.
    """

    def __init__(self, index, kind: str, settings: Settings, path: Path | None = None, gallery_sha256: str | None = None):
        self._index = index
        self.kind, self.settings, self.path = kind, settings, path
        self.dim, self.size = int(index.d), int(index.ntotal)
        self.gallery_sha256 = gallery_sha256

    def __repr__(self) -> str:
        return f"AnnIndex({self.kind}, {self.size} x {self.dim}, {self.settings})"

    @classmethod
    def build(cls, gallery, kind: str, settings: Settings | dict[str, Any] | None = None, *,
              chunk_size: int = 65536, progress: bool = False) -> "AnnIndex":
        """Index ``gallery``; its rows are L2-normalised and added ``chunk_size`` at a time.

        Args:
            gallery: ``[G, D]`` features (any device; indexed on the CPU).
            kind: ``"ivf"`` or ``"hnsw"``.
            settings: :class:`IVFSettings` / :class:`HNSWSettings`, or a dict of their fields.
            chunk_size: rows normalised and added at once (memory ``chunk_size x D`` float32).
            progress: a progress bar over the chunks.
        """
        faiss = faiss_module(_USER)
        settings = ann_settings(kind, settings)
        gallery = as_features(gallery, "gallery")
        int_in_range("chunk_size", chunk_size, 1, 2**31)
        G, D = gallery.shape
        if kind == "ivf":
            settings = _resolved(settings, G)
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(D), D, settings.nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = settings.seed
            rows = torch.randperm(G, generator=torch.Generator().manual_seed(settings.seed))[:settings.train_size]
            index.train(_unit_rows(gallery[rows.sort().values]))
        else:
            int_in_range("M", settings.M, 2, 1024)
            int_in_range("ef_construction", settings.ef_construction, 1, 2**20)
            if settings.ef_search is not None:
                int_in_range("ef_search", settings.ef_search, 1, 2**20)
            index = faiss.IndexHNSWFlat(D, settings.M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = settings.ef_construction
        for start in tqdm(range(0, G, chunk_size), desc=f"{kind} index", unit="chunk", disable=not progress,
                          leave=False):
            index.add(_unit_rows(gallery[start:start + chunk_size]))
        return cls(index, kind, settings, gallery_sha256=gallery_fingerprint(gallery))

    def search(self, query, k: int, exclude: Tensor | None = None,
               chunk_size: int = 65536) -> tuple[Tensor, Tensor]:
        """Approximate top-``k`` gallery neighbors of each query by cosine similarity.

        Rows the approximate search leaves short of ``k`` items (cells or graph
        regions holding too few) are searched again exactly.

        Args:
            query: ``[Q, D]`` features (any device; searched on the CPU).
            k: neighbors per query, ``1 <= k <= G`` (``G - 1`` with ``exclude``).
            exclude: ``[Q]`` gallery index to leave out of each query's neighbors, ``-1`` for none.
            chunk_size: query rows normalised and searched at once.

        Returns:
            ``(similarities [Q, k] float32, indices [Q, k] int64)`` on the query's device, best first.
        """
        query, exclude = self._queries(query, k, exclude)
        int_in_range("chunk_size", chunk_size, 1, 2**31)
        sims, idxs = [], []
        for start in range(0, query.shape[0], chunk_size):
            own = None if exclude is None else exclude[start:start + chunk_size]
            params = self._params(k + int(own is not None))
            s, i = self._search(_unit_rows(query[start:start + chunk_size]), k, own, params)
            sims.append(s)
            idxs.append(i)
        return torch.cat(sims).to(query.device), torch.cat(idxs).to(query.device)

    def tune(self, query, k: int, target: float = 0.99, exclude: Tensor | None = None) -> float:
        """Set ``nprobe`` (IVF: 1, 2, 4, ... up to ``nlist``) or ``ef_search`` (HNSW: ``k``, ``1.5 k``,
        ``2.25 k``, ...) to the smallest value whose recall@``k`` on ``query`` reaches ``target``,
        against exact search over the same index.

        A found item counts as a hit when it is at least as similar as the exact ``k``-th neighbor
        (so ties at the ``k``-th place are not misses). Cost: a few searches of ``query`` plus one
        exact one (``Q x G x D``); a few hundred queries drawn from the workload are enough.

        Args:
            query: ``[Q, D]`` sample queries (or gallery rows, with ``exclude`` their own index).
            k: the neighbors per query the index will be searched for.
            target: recall to reach, in ``(0, 1]``.
            exclude: ``[Q]`` as in :meth:`search`.

        Returns:
            The recall@``k`` of the setting chosen (the ladder's last, if none reaches ``target``).
        """
        if not (isinstance(target, (int, float)) and 0 < target <= 1):
            raise ValueError(f"target={target!r} is outside (0, 1]; pass the recall to reach, e.g. 0.99")
        query, exclude = self._queries(query, k, exclude)
        x = _unit_rows(query)
        exact, _ = self._search(x, k, exclude, self._exact_params())
        kth = exact[:, -1:] - 1e-5  # float32 rounding of the two kernels' products
        if self.kind == "ivf":
            nlist = self.settings.nlist
            name, ladder = "nprobe", sorted({min(nlist, 2**j) for j in range(nlist.bit_length() + 1)})
        else:
            name, ladder = "ef_search", [k]
            while ladder[-1] < self.size and len(ladder) < 24:
                ladder.append(math.ceil(1.5 * ladder[-1]))
        for value in ladder:
            found, _ = self._search(x, k, exclude, self._params(k + int(exclude is not None), **{name: value}))
            recall = float((found >= kth).float().mean())
            if recall >= target:
                break
        self.settings = _replace(self.settings, **{name: value})
        return recall

    def check(self, gallery=None, *, dim: int | None = None, size: int | None = None) -> "AnnIndex":
        """``self``, or a one-line ``ValueError`` (naming the file) unless it was built over features of
        ``gallery``'s shape ``[G, D]`` (or of ``dim`` / ``size`` where given)."""
        if gallery is not None:
            size, dim = gallery.shape
        wrong = ([f"{dim}-d features"] if dim is not None and dim != self.dim else []) + \
            ([f"a gallery of {size}"] if size is not None and size != self.size else [])
        if wrong:
            raise ValueError(f"{self.path or 'the ANN index'} was built over {self.size} gallery items of {self.dim}-d "
                             f"features, not {' and '.join(wrong)}; rebuild it over this gallery (AnnIndex.build) "
                             "or pass the gallery it was built from")
        if gallery is not None and self.gallery_sha256 is not None and \
                gallery_fingerprint(as_features(gallery, "gallery")) != self.gallery_sha256:
            raise ValueError(f"{self.path or 'the ANN index'} was built over other gallery features of the same size; "
                             "rebuild it over this gallery (reidgraph index) or pass the gallery it was built from")
        return self

    def save(self, path: str | Path) -> None:
        """Write the index and its metadata (format, kind, metric, dim, size, settings) to one file, atomically."""
        faiss = faiss_module(_USER)
        path = Path(path)
        meta = {"format": _FORMAT, "kind": self.kind, "metric": _METRIC, "dim": self.dim, "size": self.size,
                "settings": asdict(self.settings), "faiss": faiss.__version__, "gallery_sha256": self.gallery_sha256}
        with atomic_write(path, "wb") as f:
            f.write(_MAGIC)
            f.write(json.dumps(meta).encode() + b"\n")
            writer = faiss.PyCallbackIOWriter(f.write)
            faiss.write_index(self._index, writer)
            del writer  # flushes its buffer
        self.path = path

    @classmethod
    def load(cls, path: str | Path, *, dim: int | None = None, size: int | None = None) -> "AnnIndex":
        """Read an index written by :meth:`save`; refuse one built for another metric, or, where given,
        another feature dimension ``dim`` or gallery size ``size``."""
        faiss = faiss_module(_USER)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; build an index with AnnIndex.build(gallery) and save it there")
        rebuild = "rebuild it with AnnIndex.build(gallery, kind).save(path)"
        with open(path, "rb") as f:
            try:
                if f.readline() != _MAGIC:
                    raise ValueError
                meta = json.loads(f.readline())
                kind, metric = meta["kind"], meta["metric"]
                version = int(meta["format"])
                settings = _SETTINGS[kind](**meta["settings"]) if version <= _FORMAT else None
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path} is not a reidgraph ANN index (AnnIndex.save writes those); "
                                 f"{rebuild}") from None
            if settings is None:
                raise ValueError(f"{path} is in ANN index format {version}, newer than this reidgraph reads "
                                 f"({_FORMAT}); upgrade reidgraph or {rebuild}")
            if metric != _METRIC:
                raise ValueError(f"{path} was built for metric {metric!r}, but reidgraph ranks by {_METRIC} "
                                 f"similarity; {rebuild}")
            try:
                index = faiss.read_index(faiss.PyCallbackIOReader(f.read))
            except RuntimeError as err:
                raise ValueError(f"{path}: its faiss index cannot be read ({str(err).splitlines()[-1][:120]}); "
                                 f"{rebuild}") from None
        expected = faiss.IndexIVFFlat if kind == "ivf" else faiss.IndexHNSWFlat
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"{path} holds a faiss index with metric type {index.metric_type}, not inner product "
                             f"({_METRIC} on unit rows); {rebuild}")
        if not isinstance(index, expected) or index.d != meta["dim"] or index.ntotal != meta["size"]:
            raise ValueError(f"{path}: its faiss index ({type(index).__name__}, {index.ntotal} x {index.d}) does not "
                             f"match its metadata ({kind}, {meta['size']} x {meta['dim']}); {rebuild}")
        return cls(index, kind, settings, path, meta.get("gallery_sha256")).check(dim=dim, size=size)

    def nprobe(self, k: int) -> int:
        """The cells an IVF search for ``k`` neighbors scans (see :class:`IVFSettings`)."""
        s = self.settings
        if s.nprobe is not None:
            return s.nprobe
        return min(s.nlist, max(_NPROBE_FLOOR, math.ceil(_SCAN_PER_NEIGHBOUR * k * s.nlist / self.size)))

    def ef_search(self, k: int) -> int:
        """The candidates an HNSW search for ``k`` neighbors keeps (see :class:`HNSWSettings`)."""
        return self.settings.ef_search if self.settings.ef_search is not None else max(2 * k, _EF_FLOOR)

    def _queries(self, query, k: int, exclude) -> tuple[Tensor, Tensor | None]:
        query = as_features(query, "query")
        if query.shape[1] != self.dim:
            raise ValueError(f"query has {query.shape[1]}-d features but {self.path or 'the ANN index'} holds "
                             f"{self.dim}-d; extract both with the same model")
        exclude = exclusions(query.shape[0], self.size, exclude, torch.device("cpu"))
        available = self.size - int(exclude is not None)
        int_in_range("k", k, 1, available, f"the gallery offers {available} neighbors per query")
        return query, exclude

    def _params(self, k: int, **override):
        faiss = faiss_module(_USER)
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=override.get("nprobe", self.nprobe(k)))
        return faiss.SearchParametersHNSW(efSearch=override.get("ef_search", self.ef_search(k)))

    def _exact_params(self):
        return self._params(1, nprobe=self.settings.nlist) if self.kind == "ivf" else None

    def _search(self, x: np.ndarray, k: int, exclude: Tensor | None, params) -> tuple[Tensor, Tensor]:
        """Search unit rows ``x`` with faiss ``params`` (``None``: exactly); drop ``exclude``."""
        sim, idx = self._raw(x, k + int(exclude is not None), params)
        ordered = np.sort(idx, axis=1)
        if idx.size and (ordered[:, 0].min() < 0 or ordered[:, -1].max() >= self.size
                         or bool((ordered[:, 1:] == ordered[:, :-1]).any())):
            raise ValueError(f"{self.path or 'the ANN index'} returned gallery ids outside [0, {self.size}) or twice "
                             "in one row: the file is damaged or not what reidgraph wrote; rebuild it (reidgraph "
                             "index), and load index files only from a trusted source")
        return drop_excluded(torch.from_numpy(sim), torch.from_numpy(idx).long(), exclude, k)

    def _raw(self, x: np.ndarray, n: int, params) -> tuple[np.ndarray, np.ndarray]:
        if params is None:  # HNSW's exact search: its flat storage of the vectors
            sim, idx = faiss_module(_USER).downcast_index(self._index.storage).search(x, n)
        else:
            sim, idx = self._index.search(x, n, params=params)
        short = np.flatnonzero(idx[:, -1] < 0)  # faiss pads rows it could not fill with -1
        if short.size:
            sim[short], idx[short] = self._raw(x[short], n, self._exact_params())
        return sim, idx


def ann_knn(query: Tensor, gallery: Tensor, k: int, kind: str, ann: AnnIndex | Settings | dict | None,
            exclude: Tensor | None) -> tuple[Tensor, Tensor]:
    """:func:`~reidgraph.graph.knn` for ``backend="ivf"`` / ``"hnsw"``: search ``ann`` (an index of
    ``kind`` over ``gallery``), or a temporary index built over ``gallery`` with ``ann`` as settings."""
    if isinstance(ann, AnnIndex):
        if ann.kind != kind:
            raise ValueError(f"backend={kind!r} was asked for, but the index passed is {ann.kind}; "
                             f"pass backend={ann.kind!r} with it")
        index = ann.check(gallery)
    else:
        index = AnnIndex.build(gallery, kind, ann)
    sim, idx = index.search(query, k, exclude)
    return sim.to(query.dtype), idx


def gallery_fingerprint(gallery: Tensor) -> str:
    """sha256 of the gallery features as float32 bytes: what an index records of the gallery it was built over."""
    return hashlib.sha256(gallery.detach().float().cpu().contiguous().numpy().data).hexdigest()


def _resolved(s: IVFSettings, G: int) -> IVFSettings:
    """IVF settings with ``nlist`` and ``train_size`` filled in for a gallery of ``G``, all checked."""
    nlist = s.nlist if s.nlist is not None else max(1, min(round(4 * math.sqrt(G)), G // _POINTS_PER_CELL, 65536))
    int_in_range("nlist", nlist, 1, G, f"the gallery holds {G} items")
    if s.nprobe is not None:
        int_in_range("nprobe", s.nprobe, 1, nlist, f"the index has nlist={nlist} cells")
    train_size = s.train_size if s.train_size is not None else min(G, 50 * nlist)
    int_in_range("train_size", train_size, nlist, G, f"k-means needs one row per cell (nlist={nlist}); the gallery "
                 f"holds {G}")
    if not isinstance(s.seed, (int, np.integer)) or isinstance(s.seed, bool):
        raise ValueError(f"seed={s.seed!r} must be an integer")
    return IVFSettings(nlist, s.nprobe, train_size, int(s.seed))


def _replace(s: Settings, **changes) -> Settings:
    return type(s)(**{**asdict(s), **changes})


def _unit_rows(x: Tensor) -> np.ndarray:
    """``x [n, D]`` as L2-normalised, contiguous float32 CPU rows for faiss."""
    return F.normalize(x.detach().to("cpu", torch.float32), dim=1).contiguous().numpy()


__all__ = ["AnnIndex", "HNSWSettings", "IVFSettings", "KINDS", "ann_settings"]
