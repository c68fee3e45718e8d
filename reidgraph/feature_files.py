"""Read ReID features from the files people's tools write, as the fields of a :class:`~reidgraph.features.FeatureSet`.

Formats (chosen from the extension, or by ``format=``):

* ``npz``: ours (:meth:`FeatureSet.save`): ``feats [N, D]``, ``pids [N]``,
  ``camids [N]``, optional ``paths [N]``, ``split [N]``.
* ``mat``: ``pytorch_result.mat`` of Person_reID_baseline_pytorch: ``query_f [Q, D]``,
  ``query_label``, ``query_cam`` (``1 x Q``, ``Q x 1`` or flat) and the same
  for ``gallery_``; read as query rows then gallery rows, with ``split``.
* ``npy``: a matrix ``[N, D]``; its labels in a csv of the same stem
  (``feats.npy`` -> ``feats.csv``) whose header names columns among
  ``path, pid, camid, split``, one row per feature row.
* ``pt`` (``.pt``, ``.pth``): a ``torch.save``-d dict with the fields of our ``npz``.

Every error is a one-line ``ValueError`` (``FileNotFoundError`` for a missing
file) that names the file.
"""
from __future__ import annotations

import csv
import pickle
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ._checks import as_features, same_dim

FIELDS = ("feats", "pids", "camids", "paths", "split")
"""The fields of a features file, and of a :class:`~reidgraph.features.FeatureSet`."""
LABELS = {"pids": "identity labels", "camids": "camera ids"}
"""The label fields, with what they hold."""

EXTENSIONS = {".npz": "npz", ".mat": "mat", ".npy": "npy", ".pt": "pt", ".pth": "pt"}
CSV_COLUMNS = {"path": "paths", "pid": "pids", "camid": "camids", "split": "split"}
PT_HINTS = ((EOFError, "empty or truncated"), (KeyError, "not written by torch.save"),
            (pickle.UnpicklingError, "holds objects other than tensors, lists and numbers, "
                                     "or not written by torch.save"))


def read_fields(path: str | Path, format: str | None = None, labels: bool = True) -> dict:
    """The fields (:data:`FIELDS`) in ``path``, in one of :data:`FEATURE_FORMATS`; :meth:`FeatureSet.load
    <reidgraph.features.FeatureSet.load>` makes them a feature set.

    Args:
        path: the features file.
        format: one of :data:`FEATURE_FORMATS`; by default from the extension.
        labels: require ``pids`` and ``camids`` (training and evaluation need
            them); with ``False`` they are read when present.
    """
    path = Path(path)
    reader = READERS[format_of(path, format)]
    if not path.is_file():
        raise FileNotFoundError(f"features file {path} does not exist; pass the path of a .npz, .mat, .npy or .pt file")
    try:
        return reader(path, labels)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def format_of(path: Path, format: str | None) -> str:
    """``format`` checked, or the format of ``path``'s extension."""
    if format is None:
        format = EXTENSIONS.get(path.suffix.lower())
        if format is None:
            raise ValueError(f"{path}: unknown features extension '{path.suffix}'; use .npz, .mat, .npy, .pt or .pth, "
                             f"or pass format= one of {', '.join(FEATURE_FORMATS)}")
    elif format not in FEATURE_FORMATS:
        raise ValueError(f"format={format!r} for {path} is not one of {', '.join(FEATURE_FORMATS)}")
    return format


@contextmanager
def parsing(what: str, hints: tuple[tuple[type, str], ...] = ()):
    """Turn whatever a parser raises into ``ValueError("not a readable <what> (<reason>)")``.

    ``hints``: ``(exception type, reason)`` pairs replacing the parser's own words.
    """
    try:
        yield
    except Exception as err:  # parsers of arbitrary bytes raise anything: EOFError, KeyError, RuntimeError, ...
        reason = next((hint for kind, hint in hints if isinstance(err, kind)), None)
        if reason is None:  # the first sentence, after the exception's name unless it is a ValueError's message
            text = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:120]
            name = "" if isinstance(err, ValueError) and text else type(err).__name__
            reason = ": ".join(part for part in (name, text) if part)
        raise ValueError(f"not a readable {what} ({reason})") from None


def require(have, names, hint: str) -> None:
    """Raise ``lacks <names>; <hint>`` unless every one of ``names`` is in ``have``."""
    missing = [name for name in names if name not in have]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}; {hint}")


def our_fields(data, labels: bool) -> dict:
    """The fields of our ``npz`` layout found in the mapping ``data``, checked for ``feats`` (and labels)."""
    require(data, ("feats", *LABELS) if labels else ("feats",),
            "a features file holds feats [N, D] and, for training or evaluation, pids [N] and camids [N] "
            "(read with labels=False for features alone)")
    return {name: data[name] for name in FIELDS if name in data}


def read_npz(path: Path, labels: bool) -> dict:
    """Our ``.npz``: ``feats``, ``pids``, ``camids``, optional ``paths``, ``split``."""
    with parsing("npz features file"):
        if not zipfile.is_zipfile(path):
            raise ValueError("not a zip archive: truncated, or saved in another format")
        arrays, objects = {}, []
        with np.load(path, allow_pickle=False) as data:
            for name in (name for name in data.files if name in FIELDS):
                try:
                    arrays[name] = data[name]
                except ValueError:  # an object array, which only a pickle load (able to run code) reads
                    objects.append(name)
    if objects:
        raise ValueError(f"field {objects[0]!r} holds Python objects, not loaded as they could run code; save it "
                         f"as strings or numbers: np.asarray({objects[0]}, dtype=str)")
    return our_fields(arrays, labels)


def read_pt(path: Path, labels: bool) -> dict:
    """A ``torch.save``-d dict of tensors (lists for ``paths``, ``split``) named as in our ``.npz``."""
    with parsing("pt features file", PT_HINTS):
        data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict):
        raise ValueError(f"holds a {type(data).__name__}, not a dict; torch.save a dict with feats [N, D], "
                         "pids [N], camids [N] (and optionally paths, split)")
    return our_fields(data, labels)


def read_mat(path: Path, labels: bool) -> dict:
    """Person_reID_baseline_pytorch's ``pytorch_result.mat``: query rows then gallery rows, with ``split``."""
    from scipy.io import loadmat

    with parsing("mat features file", ((NotImplementedError, "MATLAB v7.3 / HDF5, which scipy cannot read; "
                                                             "re-save it with scipy.io.savemat (v5)"),)):
        mat = loadmat(path)
    suffixes = ("f", "label", "cam") if labels else ("f",)
    require(mat, [f"{part}_{s}" for part in ("query", "gallery") for s in suffixes],
            "a pytorch_result.mat holds query_f [Q, D], gallery_f [G, D] and, for training or evaluation, "
            "query_label, query_cam [Q], gallery_label, gallery_cam [G] (read with labels=False for features alone)")
    query, gallery = mat["query_f"], mat["gallery_f"]
    same_dim(query, gallery, "query_f", "gallery_f")
    fields = {"feats": np.concatenate([query, gallery]), "split": ["query"] * len(query) + ["gallery"] * len(gallery)}
    for name, suffix in (("pids", "label"), ("camids", "cam")):
        keys = (f"query_{suffix}", f"gallery_{suffix}")
        if all(key in mat for key in keys):
            fields[name] = np.concatenate([mat_vector(mat, key, len(f)) for key, f in zip(keys, (query, gallery))])
    return fields


def mat_vector(mat: dict, key: str, rows: int) -> np.ndarray:
    """``mat[key]`` (``1 x N``, ``N x 1`` or flat, as savemat writes vectors) as ``[N]``, checked against ``rows``."""
    value = mat[key]
    flat = value.ravel() if value.ndim == 2 and 1 in value.shape else value
    if flat.shape != (rows,):
        raise ValueError(f"{key} has shape {value.shape} but {key.split('_')[0]}_f has {rows} rows; "
                         "save one label per feature row")
    return flat


def read_npy(path: Path, labels: bool) -> dict:
    """A matrix ``[N, D]``, with the columns of the csv of the same stem when there is one."""
    with parsing("npy features file"):
        feats = np.load(path, allow_pickle=False)
        if isinstance(feats, np.lib.npyio.NpzFile):
            feats.close()
            raise ValueError("an npz archive, not one array; read it with format='npz'")
    feats = as_features(feats, "feats")
    table = path.with_suffix(".csv")
    if table.is_file():
        return {"feats": feats, **read_csv(table, len(feats), labels)}
    if labels:
        raise ValueError(f"has no labels: {table} does not exist; write it with a header path,pid,camid and one row "
                         "per feature row (or read with labels=False for features alone)")
    return {"feats": feats}


def read_csv(table: Path, rows: int, labels: bool) -> dict:
    """The labels csv of an ``.npy``: a header naming columns among ``path, pid, camid, split``; ``rows`` rows.

    Other columns are ignored; blank lines are skipped.
    """
    with parsing(f"labels csv {table}"), table.open(newline="", encoding="utf-8-sig") as file:
        header, *body = [row for row in csv.reader(file) if row] or [[]]
    header = [name.strip() for name in header]
    if labels:
        require(header, ("pid", "camid"), f"the header of {table} must name pid and camid columns "
                                          "(and optionally path, split), or read with labels=False")
    if len(body) != rows:
        raise ValueError(f"{table} has {len(body)} label rows for {rows} feature rows; write one csv row per "
                         "feature row, in the same order")
    for r, row in enumerate(body, 1):
        if len(row) != len(header):
            raise ValueError(f"{table} data row {r} has {len(row)} fields but the header has {len(header)}; "
                             "give every row one value per column")
    columns = dict(zip(header, zip(*body)))
    return {name: integers(table, column, columns[column]) if name in LABELS else list(columns[column])
            for column, name in CSV_COLUMNS.items() if column in columns}


def integers(table: Path, column: str, values) -> list[int]:
    """``values`` (the text of one csv column) as ints; a bad one names its data row."""
    out = []
    for r, text in enumerate(values, 1):
        try:
            out.append(int(text))
        except ValueError:
            raise ValueError(f"{table} data row {r}, column {column}: {text!r} is not an integer; "
                             "write whole-number ids") from None
    return out


READERS = {"npz": read_npz, "mat": read_mat, "npy": read_npy, "pt": read_pt}
FEATURE_FORMATS = tuple(READERS)  # ("npz", "mat", "npy", "pt")
