import warnings
from pathlib import Path

import pytest
from PIL import Image
from shared_data import shared_path

from reidgraph.data import datasets
from reidgraph.data.datasets import DATASETS, ImageRecord, ReIDDataset, load_dataset, register_dataset


def make_images(folder: Path, names) -> None:
    """Tiny 8x16 (W x H) images named ``names`` under ``folder``."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 16), (len(name) * 9 % 256, 40, 90)).save(path)


def make_market(root: Path) -> None:
    make_images(root / "bounding_box_train", ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg",
                                              "0007_c3s3_015240_04.jpg", "0000_c1s1_000001_01.jpg",
                                              "-1_c1s1_000002_01.jpg"])
    make_images(root / "query", ["0002_c1s1_001051_00.jpg", "0007_c2s1_005151_00.jpg"])
    make_images(root / "bounding_box_test", ["0002_c2s1_000301_01.jpg", "0007_c6s1_000401_02.jpg",
                                             "0000_c4s1_000501_01.jpg", "-1_c5s1_000601_01.jpg"])
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")


def labels_csv(root: Path, rows) -> None:
    for _, path, *_ in rows:
        make_images(root, [path])
    lines = ["split,path,pid,camid"] + [",".join(str(v) for v in row) for row in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")


def keys(records):
    return [(Path(r.path).name, r.pid, r.camid) for r in records]


def test_market1501_parses_ids_drops_junk_from_train_and_keeps_it_in_gallery(tmp_path):
    make_market(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Thumbs.db is ignored, not reported
        data = load_dataset("market1501", tmp_path)
    assert isinstance(data, ReIDDataset) and data.name == "market1501" and data.root == str(tmp_path)
    assert keys(data.train) == [("0002_c1s1_000451_03.jpg", 2, 0), ("0002_c2s1_000551_01.jpg", 2, 1),
                                ("0007_c3s3_015240_04.jpg", 7, 2)]
    assert keys(data.query) == [("0002_c1s1_001051_00.jpg", 2, 0), ("0007_c2s1_005151_00.jpg", 7, 1)]
    assert sorted((r.pid, r.camid) for r in data.gallery) == [(-1, 4), (0, 3), (2, 1), (7, 5)]
    assert all(isinstance(r, ImageRecord) and Path(r.path).is_absolute() and Path(r.path).is_file()
               for r in data.train + data.query + data.gallery)


def test_market1501_accepts_the_release_subfolder(tmp_path):
    make_market(tmp_path / "Market-1501-v15.09.15")
    data = load_dataset("market1501", tmp_path)
    assert data.root == str(tmp_path / "Market-1501-v15.09.15") and len(data.train) == 3


def test_dukemtmcreid_has_eight_cameras_and_keeps_all_train_ids(tmp_path):
    root = tmp_path / "DukeMTMC-reID"
    make_images(root / "bounding_box_train", ["0001_c2_f0046182.jpg", "0001_c8_f0050000.jpg", "0000_c1_f1.jpg"])
    make_images(root / "query", ["0005_c8_f0001.jpg"])
    make_images(root / "bounding_box_test", ["0005_c7_f0002.jpg", "0005_c1_f0003.jpg"])
    data = load_dataset("dukemtmcreid", tmp_path)
    assert sorted((r.pid, r.camid) for r in data.train) == [(0, 0), (1, 1), (1, 7)]
    assert [(r.pid, r.camid) for r in data.query] == [(5, 7)]
    assert len(data.gallery) == 2


@pytest.mark.parametrize("variant", ["labeled", "detected"])
def test_cuhk03_loads_the_chosen_variant(tmp_path, variant):
    for v, pid in (("labeled", 1), ("detected", 2)):
        make_images(tmp_path / "cuhk03-np" / v / "bounding_box_train", [f"{pid:04d}_c1_1.png", f"{pid:04d}_c2_2.png"])
        make_images(tmp_path / "cuhk03-np" / v / "query", [f"{pid + 10:04d}_c1_1.png"])
        make_images(tmp_path / "cuhk03-np" / v / "bounding_box_test", [f"{pid + 10:04d}_c2_3.png"])
    data = load_dataset("cuhk03", tmp_path, variant=variant)
    pid = 1 if variant == "labeled" else 2
    assert data.name == f"cuhk03_{variant}"
    assert [(r.pid, r.camid) for r in data.train] == [(pid, 0), (pid, 1)]
    assert [(r.pid, r.camid) for r in data.query + data.gallery] == [(pid + 10, 0), (pid + 10, 1)]


def test_cuhk03_rejects_unknown_variant_and_missing_variant_folder(tmp_path):
    with pytest.raises(ValueError, match="'labeled' or 'detected'"):
        load_dataset("cuhk03", tmp_path, variant="manual")
    (tmp_path / "labeled").mkdir()
    with pytest.raises(FileNotFoundError, match=r"detected folder .*detected does not exist"):
        load_dataset("cuhk03", tmp_path, variant="detected")


def test_folder_labels_with_val_take_first_image_of_each_pid_camera_as_query(tmp_path):
    labels_csv(tmp_path, [("train", "train/0000_00.jpg", 0, 0), ("train", "train/0000_05.jpg", 0, 1),
                          ("train", "train/0001_00.jpg", 1, 0),
                          # file order, not name order, decides the query
                          ("val", "val/0000_01.jpg", 0, 0), ("val", "val/0000_00.jpg", 0, 0),
                          ("val", "val/0000_05.jpg", 0, 1), ("val", "val/0001_00.jpg", 1, 0),
                          ("val", "val/0000_06.jpg", 0, 1)])
    data = load_dataset("folder", tmp_path)
    assert [(r.pid, r.camid) for r in data.train] == [(0, 0), (0, 1), (1, 0)]
    assert keys(data.query) == [("0000_01.jpg", 0, 0), ("0000_05.jpg", 0, 1), ("0001_00.jpg", 1, 0)]
    assert keys(data.gallery) == [("0000_00.jpg", 0, 0), ("0000_06.jpg", 0, 1)]
    assert data.train[0].path == str(tmp_path / "train" / "0000_00.jpg")


def test_folder_with_pattern_reads_nested_custom_folders(tmp_path):
    make_images(tmp_path / "tr", ["a/p12-c0.png", "b/p12-c3.bmp", "p4-c1.jpeg"])
    make_images(tmp_path / "q", ["p12-c1.jpg"])
    make_images(tmp_path / "g", ["p12-c0.JPG", "p4-c3.png"])
    data = load_dataset("folder", tmp_path, pattern=r"p(?P<pid>\d+)-c(?P<camid>\d+)",
                        train_dir="tr", query_dir="q", gallery_dir="g")
    assert keys(data.train) == [("p12-c0.png", 12, 0), ("p12-c3.bmp", 12, 3), ("p4-c1.jpeg", 4, 1)]
    assert keys(data.query) == [("p12-c1.jpg", 12, 1)]
    assert keys(data.gallery) == [("p12-c0.JPG", 12, 0), ("p4-c3.png", 4, 3)]


def test_folder_with_labels_csv(tmp_path):
    labels_csv(tmp_path, [("train", "imgs/x.jpg", 3, 1), ("query", "imgs/y.png", 5, 0),
                          ("gallery", "imgs/z.png", 5, 2), ("gallery", "imgs/w.png", 8, 2)])
    data = load_dataset("folder", tmp_path)
    assert keys(data.train) == [("x.jpg", 3, 1)]
    assert keys(data.query) == [("y.png", 5, 0)]
    assert keys(data.gallery) == [("z.png", 5, 2), ("w.png", 8, 2)]


def test_labels_csv_skips_missing_files_with_one_warning_per_split(tmp_path):
    labels_csv(tmp_path, [("train", "a.jpg", 1, 0), ("query", "b.jpg", 1, 1), ("gallery", "c.jpg", 1, 0)])
    with open(tmp_path / "labels.csv", "a") as file:
        file.write("train,gone.jpg,2,0\ntrain,notes.txt,2,1\n")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.warns(UserWarning) as record:
        data = load_dataset("folder", tmp_path)
    assert len(record) == 1 and "skipped 2 train image(s)" in str(record[0].message)
    assert "gone.jpg" in str(record[0].message) and len(data.train) == 1


@pytest.mark.parametrize("text, match", [
    ("split,path,pid\n", "lacks the column"),
    ("split,path,pid,camid\ntest,a.jpg,1,0\n", "line 2: split 'test' is not one of train, query, gallery, val"),
    ("split,path,pid,camid\ntrain,a.jpg,1,0\nquery,a.jpg,1,0\n", "has no gallery rows"),
    ("split,path,pid,camid\ntrain,a.jpg,1,0\nval,a.jpg,1,0\ngallery,a.jpg,1,0\n", "has val rows and query/gallery"),
    ("split,path,pid,camid\ntrain,a.jpg,one,0\n", "line 2: pid 'one' and camid '0' must be integers"),
])
def test_bad_labels_csv_is_reported_with_its_line(tmp_path, text, match):
    make_images(tmp_path, ["a.jpg"])
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_dataset("folder", tmp_path)


def test_folder_needs_labels_or_a_pattern_with_both_groups(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels.csv does not exist.*pattern="):
        load_dataset("folder", tmp_path)
    with pytest.raises(ValueError, match="lacks the named group.*camid"):
        load_dataset("folder", tmp_path, pattern=r"(?P<pid>\d+)")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        load_dataset("folder", tmp_path, pattern="(?P<pid>")


def test_missing_root_and_split_folder_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset root .*nowhere does not exist.*bounding_box_train"):
        load_dataset("market1501", tmp_path / "nowhere")
    make_market(tmp_path)
    (tmp_path / "query").rename(tmp_path / "probe")
    with pytest.raises(FileNotFoundError, match=r"query folder .*query does not exist"):
        load_dataset("market1501", tmp_path)


def test_bad_names_are_skipped_with_one_counting_warning(tmp_path):
    make_market(tmp_path)
    make_images(tmp_path / "bounding_box_train", ["junk.jpg", "0003_c7s1_000001_01.jpg"])  # camera 7 > 6
    with pytest.warns(UserWarning) as record:
        data = load_dataset("market1501", tmp_path)
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 2 train image(s)" in message and "bounding_box_train" in message
    assert "0003_c7s1_000001_01.jpg" in message and len(data.train) == 3


def test_a_split_with_nothing_left_is_an_error(tmp_path):
    make_market(tmp_path)
    for path in (tmp_path / "query").iterdir():
        path.rename(path.with_name("x" + path.name))
    with pytest.raises(ValueError, match=r"no query images left \(2 skipped"), pytest.warns(UserWarning):
        load_dataset("market1501", tmp_path)


def test_a_train_split_of_only_junk_and_distractors_is_an_error(tmp_path):
    make_market(tmp_path)
    for path in (tmp_path / "bounding_box_train").glob("000[27]_*"):
        path.unlink()
    with pytest.raises(ValueError, match="no train images left"):
        load_dataset("market1501", tmp_path)


def test_unknown_dataset_or_option_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'market'.*cuhk03, dukemtmcreid, folder, market1501"):
        load_dataset("market", tmp_path)
    with pytest.raises(ValueError, match="'market1501'.*options are: none"):
        load_dataset("market1501", tmp_path, variant="labeled")
    with pytest.raises(ValueError, match="options are: pattern, train_dir, query_dir, gallery_dir"):
        load_dataset("folder", tmp_path, pattrn="x")


def test_register_dataset_adds_a_loader_and_refuses_duplicates(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "DATASETS", dict(DATASETS))

    @register_dataset("tiny")
    def tiny(root, size=1):
        records = [ImageRecord(str(root), 1, 0)] * size
        return ReIDDataset("tiny", str(root), records, records, records)

    assert len(load_dataset("tiny", tmp_path, size=2).train) == 2
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("tiny")(tiny)


def test_stats_table_counts_ids_images_and_cameras_per_split(tmp_path):
    make_market(tmp_path)
    data = load_dataset("market1501", tmp_path)
    assert data.stats() == [("train", 2, 3, 3), ("query", 2, 2, 2), ("gallery", 4, 4, 4)]
    lines = data.stats_table().splitlines()
    assert lines[0] == f"market1501 ({tmp_path})"
    assert lines[1].split() == ["split", "ids", "images", "cameras"]
    assert [line.split() for line in lines[2:]] == [["train", "2", "3", "3"], ["query", "2", "2", "2"],
                                                    ["gallery", "4", "4", "4"]]


@pytest.mark.slow
def test_shared_cuhk03_labeled_follows_the_np_rule():
    root = shared_path("datasets", "cuhk03-labeled", "labels.csv", what="real CUHK03").parent
    data = load_dataset("folder", root)
    assert data.stats() == [("train", 743, 7239, 2), ("query", 100, 200, 2), ("gallery", 100, 738, 2)]
    assert all(Path(r.path).is_file() for r in data.query)
