"""Person ReID datasets: lists of images with their person and camera ids.

Each loader reads one on-disk layout into a :class:`ReIDDataset` (train,
query and gallery lists of :class:`ImageRecord`) and registers itself by name,
so the CLI can say ``--dataset market1501``::

    data = load_dataset("market1501", "~/data/market")
    print(data.stats_table())

Loaders only list files; :class:`~reidgraph.data.image_dataset.ImageDataset`
reads the pixels.
"""
from __future__ import annotations

import csv
import inspect
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

from ..features import SPLITS, first_of_each_pid_camid

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
LABELS_FILE = "labels.csv"
LABELS_HEADER = ("split", "path", "pid", "camid")
# A labels.csv gives query and gallery, or a "val" split that the CUHK03-NP rule divides into them.
LABELS_SPLITS = (*SPLITS, "val")
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MARKET_LAYOUT = "root should hold " + ", ".join(MARKET_FOLDERS.values())


class MissingImagesWarning(UserWarning):
    """Rows of a ``labels.csv`` skipped because their file is missing or not an image.

    Training goes on without them; ``reidgraph extract``, which owes one row per listed image, turns it
    into an error (``warnings.simplefilter("error", MissingImagesWarning)``).
    """


class ImageRecord(NamedTuple):
    """One image: its absolute ``path``, person id ``pid`` and camera id ``camid``."""

    path: str
    pid: int
    camid: int


@dataclass
class ReIDDataset:
    """A ReID dataset as three image lists.

    Attributes:
        name: the registry name (``cuhk03`` adds its variant: ``cuhk03_labeled``).
        root: absolute path of the folder the images were found in.
        train, query, gallery: the :class:`ImageRecord` of each split. In
            Market-style sets the gallery keeps junk (pid ``-1``) and
            distractor (pid ``0``) images, which evaluation needs.
    """

    name: str
    root: str
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]

    def stats(self) -> list[tuple[str, int, int, int]]:
        """One row per split: ``(split, number of ids, number of images, number of cameras)``.

        Junk (``-1``) and distractors (``0``) count as one id each, as in the
        tables of the dataset papers.
        """
        rows = []
        for split in SPLITS:
            records = getattr(self, split)
            rows.append((split, len({r.pid for r in records}), len(records), len({r.camid for r in records})))
        return rows

    def stats_table(self) -> str:
        """The rows of :meth:`stats` as a plain-text table headed by the name and root."""
        header = ("split", "ids", "images", "cameras")
        cells = [header] + [tuple(str(v) for v in row) for row in self.stats()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        lines = [f"{self.name} ({self.root})"]
        for row in cells:
            lines.append("  ".join([row[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(row[1:], widths[1:])]))
        return "\n".join(lines)


Loader = Callable[..., ReIDDataset]
DATASETS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make ``loader(root, **options) -> ReIDDataset`` loadable as ``load_dataset(name, ...)``."""
    def add(loader: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset name {name!r} is already registered; choose another name")
        DATASETS[name] = loader
        return loader
    return add


def load_dataset(name: str, root: str | os.PathLike, **options) -> ReIDDataset:
    """Load the dataset registered as ``name`` from ``root``, passing ``options`` to its loader."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    loader = DATASETS[name]
    signature = inspect.signature(loader)
    try:
        signature.bind(root, **options)
    except TypeError as err:
        allowed = [p for p in signature.parameters if p != "root"]
        raise ValueError(f"dataset {name!r}: {err}; its options are: {', '.join(allowed) or 'none'}") from None
    return loader(root, **options)


def _dataset_root(root: str | os.PathLike, subdir: str | None, layout: str) -> Path:
    """``root`` as an absolute path, or its ``subdir`` where the release unpacks into one."""
    path = Path(os.path.abspath(os.path.expanduser(root)))
    if not path.is_dir():
        raise FileNotFoundError(f"dataset root {path} does not exist; pass an existing folder ({layout})")
    if subdir is not None and (path / subdir).is_dir():
        return path / subdir
    return path


def _split_dir(base: Path, folder: str, what: str, layout: str) -> Path:
    path = base / folder
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder {path} does not exist; {layout}")
    return path


def _checked(records: list[ImageRecord], skipped: list[str], split: str, where: Path, why: str,
             category: type[Warning] = UserWarning) -> list[ImageRecord]:
    """Warn once (as ``category``) about the ``skipped`` files of a split; raise if the split is left empty."""
    if skipped:
        warnings.warn(f"{where}: skipped {len(skipped)} {split} image(s) {why} (e.g. {skipped[0]})", category)
    if not records:
        because = f" ({len(skipped)} skipped {why})" if skipped else ""
        raise ValueError(f"{where}: no {split} images left{because}; check the {split} images and their names")
    return records


def _scan(folder: Path, pattern: re.Pattern, split: str, camid_offset: int = 0,
          drop_pids: frozenset[int] = frozenset()) -> list[ImageRecord]:
    """Every image under ``folder`` (sorted, recursive) whose file name ``pattern`` matches.

    ``pattern`` must have named groups ``pid`` and ``camid`` capturing integers;
    ``camid_offset`` is subtracted from the camera id (1 for 1-based names).
    Images with a pid in ``drop_pids`` are left out silently.
    """
    records, skipped = [], []
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    for path in paths:
        match = pattern.search(path.name)
        try:
            pid, camid = int(match["pid"]), int(match["camid"]) - camid_offset
        except (TypeError, ValueError):  # no match (None), or a group that captured no integer
            skipped.append(path.name)
            continue
        if pid not in drop_pids:
            records.append(ImageRecord(str(path), pid, camid))
    return _checked(records, skipped, split, folder, f"whose names do not match {pattern.pattern!r}")


def _read_labels(base: Path) -> dict[str, list[ImageRecord]]:
    """The rows of ``base/labels.csv`` (``split,path,pid,camid``), in file order, by split (those present).

    Paths are relative to ``base``. Rows whose file is missing or not an image
    are skipped with one warning per split.
    """
    labels = base / LABELS_FILE
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} does not exist; expected a {LABELS_FILE} with header "
                                f"{','.join(LABELS_HEADER)} there")
    records = {split: [] for split in LABELS_SPLITS}
    skipped = {split: [] for split in LABELS_SPLITS}
    with open(labels, newline="") as file:
        reader = csv.DictReader(file)
        missing = [c for c in LABELS_HEADER if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{labels} lacks the column(s) {', '.join(missing)}; "
                             f"its header must be {','.join(LABELS_HEADER)}")
        for row in reader:
            where = f"{labels} line {reader.line_num}"
            if row["split"] not in records:
                raise ValueError(f"{where}: split {row['split']!r} is not one of {', '.join(LABELS_SPLITS)}; "
                                 "use those")
            try:
                pid, camid = int(row["pid"]), int(row["camid"])
            except (TypeError, ValueError):
                raise ValueError(f"{where}: pid {row['pid']!r} and camid {row['camid']!r} must be integers") from None
            path = base / row["path"]
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                records[row["split"]].append(ImageRecord(str(path), pid, camid))
            else:
                skipped[row["split"]].append(row["path"])
    why = f"that are missing or not {'/'.join(sorted(IMAGE_EXTENSIONS))} files"
    return {split: _checked(records[split], skipped[split], split, labels, why, MissingImagesWarning)
            for split in LABELS_SPLITS if records[split] or skipped[split]}


def _labelled(base: Path) -> ReIDDataset:
    """The dataset ``base/labels.csv`` lists: train and query and gallery, or train and val (CUHK03-NP rule)."""
    splits, labels = _read_labels(base), base / LABELS_FILE
    if "val" in splits:
        if "query" in splits or "gallery" in splits:
            raise ValueError(f"{labels} has val rows and query/gallery rows; use val (divided into query and "
                             "gallery by the CUHK03-NP rule) or query and gallery, not both")
        splits["query"], splits["gallery"] = _first_per_pid_cam(splits.pop("val"))
    missing = [split for split in SPLITS if not splits.get(split)]
    if missing:
        raise ValueError(f"{labels} has no {missing[0]} rows; it needs train rows, and query and gallery rows "
                         "or val rows")
    return ReIDDataset("folder", str(base), **splits)


def _first_per_pid_cam(records: list[ImageRecord]) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """The CUHK03-NP rule: the first image of each (pid, camid) is a query, the rest the gallery."""
    first = first_of_each_pid_camid((r.pid, r.camid) for r in records)
    return [r for r, q in zip(records, first) if q], [r for r, q in zip(records, first) if not q]


def _market_style(name: str, base: Path, num_cams: int, drop_from_train: frozenset[int] = frozenset()) -> ReIDDataset:
    """The Market-1501 layout: names ``PPPP_cC...`` (pid, camera 1..num_cams) in the three standard folders.

    Camera ids become 0-based; a camera outside 1..num_cams counts as a bad name.
    """
    pattern = re.compile(rf"^(?P<pid>-?\d+)_c(?P<camid>[1-{num_cams}])")
    splits = {split: _scan(_split_dir(base, folder, split, MARKET_LAYOUT), pattern, split, camid_offset=1,
                           drop_pids=drop_from_train if split == "train" else frozenset())
              for split, folder in MARKET_FOLDERS.items()}
    return ReIDDataset(name, str(base), **splits)


@register_dataset("market1501")
def market1501(root: str | os.PathLike) -> ReIDDataset:
    """Market-1501: 6 cameras; ``root`` or ``root/Market-1501-v15.09.15`` holds the standard folders.

    Train leaves out junk (pid ``-1``) and distractors (pid ``0``), which are
    not people to learn; the gallery keeps both for evaluation. Train pids
    stay raw (the trainer relabels them).
    """
    base = _dataset_root(root, "Market-1501-v15.09.15", MARKET_LAYOUT)
    return _market_style("market1501", base, num_cams=6, drop_from_train=frozenset({-1, 0}))


@register_dataset("dukemtmcreid")
def dukemtmcreid(root: str | os.PathLike) -> ReIDDataset:
    """DukeMTMC-reID: Market-style names, 8 cameras; ``root`` or ``root/DukeMTMC-reID`` holds the folders."""
    base = _dataset_root(root, "DukeMTMC-reID", MARKET_LAYOUT)
    return _market_style("dukemtmcreid", base, num_cams=8)


@register_dataset("cuhk03")
def cuhk03(root: str | os.PathLike, variant: str = "labeled") -> ReIDDataset:
    """CUHK03-NP (new protocol), 2 cameras: ``root/{labeled,detected}/`` hold Market-style folders.

    ``root`` may also be the folder above ``cuhk03-np``. The release has 767
    train and 700 test ids; whatever is on disk is loaded.
    """
    if variant not in ("labeled", "detected"):
        raise ValueError(f"cuhk03: variant={variant!r}; pass 'labeled' or 'detected'")
    layout = "root should hold labeled/ and detected/, each with " + ", ".join(MARKET_FOLDERS.values())
    base = _dataset_root(root, "cuhk03-np", layout)
    return _market_style(f"cuhk03_{variant}", _split_dir(base, variant, f"cuhk03 {variant}", layout), num_cams=2)


@register_dataset("folder")
def folder(root: str | os.PathLike, pattern: str | re.Pattern | None = None, train_dir: str = "train",
           query_dir: str = "query", gallery_dir: str = "gallery") -> ReIDDataset:
    """Any tree of images, labelled by ``root/labels.csv`` or by a file-name pattern.

    Without ``pattern``, ``labels.csv`` (``split,path,pid,camid``; split among
    train, query, gallery; paths relative to ``root``) gives everything. In
    place of query and gallery it may list a ``val`` split: the first image (in
    file order) of each (pid, camid) is a query, every other one is in the
    gallery (the CUHK03-NP rule). With
    ``pattern``, a regular expression with named groups ``pid`` and ``camid``
    is searched in each file name under ``root/train_dir``, ``root/query_dir``
    and ``root/gallery_dir`` (searched recursively); ids are used as written.

    Example: ``pattern=r"(?P<pid>\\d+)_c(?P<camid>\\d+)"`` reads ``0042_c3_17.png``.
    """
    if pattern is None:
        base = _dataset_root(root, None, f"root should hold {LABELS_FILE} and the images it lists")
        if not (base / LABELS_FILE).is_file():
            raise FileNotFoundError(f"{base / LABELS_FILE} does not exist; add one ({','.join(LABELS_HEADER)}) "
                                    "or pass pattern= with named groups pid and camid")
        return _labelled(base)
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({err}); fix it") from None
    missing = [g for g in ("pid", "camid") if g not in compiled.groupindex]
    if missing:
        raise ValueError(f"pattern {compiled.pattern!r} lacks the named group(s) {', '.join(missing)}; "
                         r"write them as (?P<pid>\d+) and (?P<camid>\d+)")
    dirs = {"train": train_dir, "query": query_dir, "gallery": gallery_dir}
    layout = f"root should hold {', '.join(dirs.values())} (set them with train_dir, query_dir, gallery_dir)"
    base = _dataset_root(root, None, layout)
    return ReIDDataset("folder", str(base), **{split: _scan(_split_dir(base, d, split, layout), compiled, split)
                                               for split, d in dirs.items()})
