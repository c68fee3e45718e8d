import pickle

import numpy as np
import pytest
import scipy.io
import torch

from reidgraph.feature_files import FEATURE_FORMATS
from reidgraph.features import FeatureSet

# Query rows first, as the .mat layout reads them.
FEATS = np.arange(20, dtype=np.float32).reshape(5, 4) / 7
PIDS, CAMIDS = [1, 2, 1, 2, 3], [0, 1, 2, 0, 1]
PATHS = [f"cam{c}/{p}_{i}.jpg" for i, (p, c) in enumerate(zip(PIDS, CAMIDS))]
SPLIT = ["query", "query", "gallery", "gallery", "gallery"]
Q = 2


def write_npz(path, labels=True):
    extra = dict(pids=PIDS, camids=CAMIDS, paths=PATHS, split=SPLIT) if labels else {}
    np.savez(path, feats=FEATS, **extra)


def write_mat(path, labels=True, column=False):
    """Person_reID_baseline_pytorch's layout: labels as Python lists, which savemat writes 1 x N."""
    vec = (lambda v: np.array(v)[:, None]) if column else list
    mat = {"query_f": FEATS[:Q], "gallery_f": FEATS[Q:]}
    if labels:
        mat.update(query_label=vec(PIDS[:Q]), query_cam=vec(CAMIDS[:Q]),
                   gallery_label=vec(PIDS[Q:]), gallery_cam=vec(CAMIDS[Q:]))
    scipy.io.savemat(path, mat)


def write_csv(path, rows):
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows))


def write_npy(path, labels=True):
    np.save(path, FEATS)
    if labels:
        write_csv(path.with_suffix(".csv"), [("path", "pid", "camid", "split"), *zip(PATHS, PIDS, CAMIDS, SPLIT)])


def write_pt(path, labels=True):
    extra = dict(pids=torch.tensor(PIDS), camids=torch.tensor(CAMIDS), paths=PATHS, split=SPLIT) if labels else {}
    torch.save({"feats": torch.from_numpy(FEATS), **extra}, path)


WRITERS = {"npz": write_npz, "mat": write_mat, "npy": write_npy, "pt": write_pt}


def one_line_error(kind, match, call, *names):
    """Run ``call``, expecting ``kind`` matching ``match``, on one line naming every one of ``names``."""
    with pytest.raises(kind, match=match) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and all(str(name) in message for name in names), message
    return message


@pytest.mark.parametrize("fmt", FEATURE_FORMATS)
def test_round_trip(tmp_path, fmt):
    path = tmp_path / f"feats.{fmt}"
    WRITERS[fmt](path)
    fs = FeatureSet.load(path)
    assert torch.equal(fs.feats, torch.from_numpy(FEATS))
    assert fs.pids.tolist() == PIDS and fs.camids.tolist() == CAMIDS and fs.split == SPLIT
    assert fs.paths == (None if fmt == "mat" else PATHS)  # the .mat layout has no paths
    q, g = fs.query_gallery()
    assert len(q) == Q and len(g) == len(PIDS) - Q


def test_mat_column_labels_and_load_delegates(tmp_path):
    write_mat(tmp_path / "pytorch_result.mat", column=True)
    fs = FeatureSet.load(tmp_path / "pytorch_result.mat")
    assert fs.pids.tolist() == PIDS and fs.camids.tolist() == CAMIDS


def test_pth_and_explicit_format(tmp_path):
    write_pt(tmp_path / "feats.pth")
    assert FeatureSet.load(tmp_path / "feats.pth").pids.tolist() == PIDS
    write_npz(tmp_path / "feats.npz")
    (tmp_path / "feats.npz").rename(tmp_path / "feats.bin")
    assert FeatureSet.load(tmp_path / "feats.bin", format="npz").split == SPLIT
    one_line_error(ValueError, r"unknown features extension '\.bin'.*format=",
                   lambda: FeatureSet.load(tmp_path / "feats.bin"), tmp_path / "feats.bin")
    one_line_error(ValueError, "format='h5'.*npz, mat, npy, pt",
                   lambda: FeatureSet.load(tmp_path / "feats.bin", format="h5"), tmp_path / "feats.bin")


@pytest.mark.parametrize("fmt", FEATURE_FORMATS)
def test_features_alone(tmp_path, fmt):
    path = tmp_path / f"feats.{fmt}"
    WRITERS[fmt](path, labels=False)
    fs = FeatureSet.load(path, labels=False)
    assert torch.equal(fs.feats, torch.from_numpy(FEATS)) and fs.pids is None and fs.camids is None
    assert fs.split == (SPLIT if fmt == "mat" else None)
    message = one_line_error(ValueError, "lacks|labels", lambda: FeatureSet.load(path), path)
    assert ("pid" in message) or ("label" in message)


def test_csv_with_some_columns(tmp_path):
    np.save(tmp_path / "feats.npy", FEATS)
    write_csv(tmp_path / "feats.csv", [("camid", "path", "frame"), *zip(CAMIDS, PATHS, range(5))])
    fs = FeatureSet.load(tmp_path / "feats.npy", labels=False)
    assert fs.pids is None and fs.camids.tolist() == CAMIDS and fs.paths == PATHS
    one_line_error(ValueError, "lacks pid;.*feats.csv", lambda: FeatureSet.load(tmp_path / "feats.npy"),
                   tmp_path / "feats.npy")


@pytest.mark.parametrize("fmt", FEATURE_FORMATS)
def test_missing_file(tmp_path, fmt):
    one_line_error(FileNotFoundError, "does not exist", lambda: FeatureSet.load(tmp_path / f"no.{fmt}"),
                   tmp_path / f"no.{fmt}")


def test_mat_missing_field(tmp_path):
    path = tmp_path / "pytorch_result.mat"
    scipy.io.savemat(path, {"query_f": FEATS[:Q], "query_label": PIDS[:Q], "query_cam": CAMIDS[:Q],
                            "gallery_f": FEATS[Q:], "gallery_label": PIDS[Q:]})
    one_line_error(ValueError, "lacks gallery_cam", lambda: FeatureSet.load(path), path)
    partial = FeatureSet.load(path, labels=False)  # labels=False keeps the labels both parts have
    assert partial.pids.tolist() == PIDS and partial.camids is None
    scipy.io.savemat(path, {"query_f": FEATS[:Q]})
    one_line_error(ValueError, "lacks gallery_f", lambda: FeatureSet.load(path, labels=False), path)


def test_mat_label_shape_and_dims(tmp_path):
    path = tmp_path / "r.mat"
    scipy.io.savemat(path, {"query_f": FEATS[:Q], "query_label": PIDS[:Q + 1], "query_cam": CAMIDS[:Q],
                            "gallery_f": FEATS[Q:], "gallery_label": PIDS[Q:], "gallery_cam": CAMIDS[Q:]})
    one_line_error(ValueError, r"query_label has shape \(1, 3\) but query_f has 2 rows", lambda: FeatureSet.load(path),
                   path)
    scipy.io.savemat(path, {"query_f": FEATS[:Q], "gallery_f": FEATS[Q:, :3]})
    one_line_error(ValueError, "query_f has 4-d features but gallery_f has 3-d",
                   lambda: FeatureSet.load(path, labels=False), path)


def test_mat_v73(tmp_path):
    path = tmp_path / "v73.mat"  # the 128-byte header MATLAB writes before an HDF5 body
    path.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x02IM" + bytes(384))
    one_line_error(ValueError, r"v7\.3.*scipy\.io\.savemat", lambda: FeatureSet.load(path), path)


def test_npy_csv_errors(tmp_path):
    npy, table = tmp_path / "feats.npy", tmp_path / "feats.csv"
    np.save(npy, FEATS)
    one_line_error(ValueError, "feats.csv does not exist", lambda: FeatureSet.load(npy), npy, table)
    write_csv(table, [("pid", "camid"), *zip(PIDS[:4], CAMIDS[:4])])
    one_line_error(ValueError, "4 label rows for 5 feature rows", lambda: FeatureSet.load(npy), npy, table)
    one_line_error(ValueError, "4 label rows", lambda: FeatureSet.load(npy, labels=False), npy, table)
    write_csv(table, [("pid", "camid"), *zip(PIDS[:3], CAMIDS[:3]), ("x7", 0), (3, 1)])
    one_line_error(ValueError, "data row 4, column pid: 'x7' is not an integer", lambda: FeatureSet.load(npy),
                   npy, table)
    write_csv(table, [("pid", "camid"), *zip(PIDS[:4], CAMIDS[:4]), (3,)])
    one_line_error(ValueError, "data row 5 has 1 fields but the header has 2", lambda: FeatureSet.load(npy), npy, table)
    table.write_bytes(b"\xff\xfe\x00pid")
    one_line_error(ValueError, "not a readable labels csv", lambda: FeatureSet.load(npy), npy, table)


def test_unreadable_files(tmp_path):
    cases = {"trunc.npz": None, "empty.npz": b"", "text.npz": b"pid,camid\n1,2\n", "array.npz": None,
             "empty.mat": b"", "text.mat": b"hello\n", "empty.npy": b"", "text.npy": b"1 2 3\n",
             "object.npy": None, "zip.npy": None, "empty.pt": b"", "text.pt": b"hello\n", "pickle.pt": None}
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    np.savez(tmp_path / "full.npz", feats=FEATS, pids=PIDS, camids=CAMIDS)
    whole = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(whole[:len(whole) // 2])
    np.save(tmp_path / "array.npz.npy", FEATS)
    (tmp_path / "array.npz.npy").rename(tmp_path / "array.npz")
    np.save(tmp_path / "object.npy", np.array([{"feats": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "full.npz").rename(tmp_path / "zip.npy")
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps(pickle.PickleError, protocol=2))
    for name in cases:
        fmt = name.rsplit(".", 1)[1]
        one_line_error(ValueError, f": not a readable {fmt} features file \\(.+\\)$",
                       lambda: FeatureSet.load(tmp_path / name), tmp_path / name)


def test_object_field_is_named(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, feats=FEATS, pids=PIDS, camids=CAMIDS, paths=np.array([object()] * len(PIDS), dtype=object))
    one_line_error(ValueError, "field 'paths' holds Python objects.+dtype=str\\)$", lambda: FeatureSet.load(path), path)


def test_pt_shapes(tmp_path):
    path = tmp_path / "feats.pt"
    torch.save([torch.from_numpy(FEATS)], path)
    one_line_error(ValueError, "holds a list, not a dict", lambda: FeatureSet.load(path), path)
    torch.save({"pids": torch.tensor(PIDS)}, path)
    one_line_error(ValueError, "lacks feats", lambda: FeatureSet.load(path, labels=False), path)
    torch.save({"feats": torch.from_numpy(FEATS), "pids": torch.tensor(PIDS[:3]), "camids": torch.tensor(CAMIDS)}, path)
    one_line_error(ValueError, r"pids has shape \(3,\) but feats has 5", lambda: FeatureSet.load(path), path)
    torch.save({"feats": torch.from_numpy(FEATS), "pids": list("abcde"), "camids": CAMIDS}, path)
    one_line_error(ValueError, "feats.pt: pids must hold integers, got <U1", lambda: FeatureSet.load(path), path)
