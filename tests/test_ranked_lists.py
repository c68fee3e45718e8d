"""Ranked lists on disk: each format round-trips, names or row numbers, and nothing partial is left."""
import csv
import json

import numpy as np
import pytest
import torch

from reidgraph.ranked_lists import output_format, write_ranked

INDEX = torch.tensor([[2, 0, 1], [1, 2, 0]])
DISTANCE = torch.tensor([[0.1, 0.25, 0.5], [0.2, 0.3, 0.9]])


def read_rows(path):
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["query", "rank", "gallery", "distance"]
        return [(q, int(r), g, float(d)) for q, r, g, d in rows[1:]]
    return [(o["query"], o["rank"], o["gallery"], o["distance"]) for o in json.loads(path.read_text())]


def test_npz_holds_index_distance_and_paths(tmp_path):
    out = write_ranked(tmp_path / "r.npz", INDEX, DISTANCE, ["q0", "q1"], ["g0", "g1", "g2"])
    with np.load(out) as data:
        assert data["index"].dtype == np.int64 and data["distance"].dtype == np.float32
        assert np.array_equal(data["index"], INDEX.numpy()) and np.allclose(data["distance"], DISTANCE.numpy())
        assert data["query_paths"].tolist() == ["q0", "q1"] and data["gallery_paths"].tolist() == ["g0", "g1", "g2"]
    out = write_ranked(tmp_path / "plain.npz", INDEX, DISTANCE)
    with np.load(out) as data:
        assert sorted(data.files) == ["distance", "index"]


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_csv_and_json_list_every_rank_with_paths_or_row_numbers(tmp_path, suffix):
    rows = read_rows(write_ranked(tmp_path / f"r{suffix}", INDEX, DISTANCE, ["q0", "q1"], ["g0", "g1", "g2"]))
    assert rows[:3] == [("q0", 1, "g2", 0.1), ("q0", 2, "g0", 0.25), ("q0", 3, "g1", 0.5)]
    assert len(rows) == 6 and rows[3] == ("q1", 1, "g1", 0.2)
    rows = read_rows(write_ranked(tmp_path / f"n{suffix}", INDEX, DISTANCE))
    assert [(str(q), r, str(g)) for q, r, g, _ in rows][:2] == [("0", 1, "2"), ("0", 2, "0")]


def test_a_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "r.csv").write_text("previous\n")
    with pytest.raises(IndexError):
        write_ranked(tmp_path / "r.csv", INDEX, DISTANCE, ["q0", "q1"], ["g0"])  # gallery paths too short
    assert (tmp_path / "r.csv").read_text() == "previous\n"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]  # and no partial file remains


def test_output_path_errors_are_one_line(tmp_path):
    for path, match in [(tmp_path / "r.txt", "unknown extension"), (tmp_path / "r", "unknown extension"),
                        (tmp_path / "no" / "r.npz", "does not exist")]:
        with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
            output_format(path)
        assert "\n" not in str(err.value)
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        output_format(tmp_path / "d.npz")
    assert output_format(tmp_path / "R.JSON") == "json"
