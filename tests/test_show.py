"""`reidgraph show`: ranked lists drawn as a PNG (checked by its pixels) and as one self-contained HTML page
(parsed, and in a slow test opened by a real headless browser), with bad inputs refused in one line."""
import csv
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reidgraph.cli import main
from reidgraph.features import FeatureSet
from reidgraph.ranked_lists import read_ranked, write_ranked
from reidgraph.ranked_view import FRAMES, IGNORED, MATCH, MISS, QUERY, UNLABELLED
from reidgraph.visualize import BORDER, Layout

SIZE = (64, 128)  # the default thumbnail
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def files(tiny_market, tmp_path_factory):
    """q.npz and g.npz of the tiny generated market (paths relative to it, labels), and a ranked file whose
    query 0 lists a match, a non-match and an ignored image (its identity in its camera) first."""
    out = tmp_path_factory.mktemp("show")
    sets = {}
    for split, folder in (("query", "query"), ("gallery", "bounding_box_test")):
        paths = sorted(str(p.relative_to(tiny_market)) for p in (tiny_market / folder).glob("*.jpg"))
        pids = [int(Path(p).name[:4]) for p in paths]
        camids = [int(re.search(r"_c(\d)", p)[1]) for p in paths]
        sets[split] = FeatureSet(torch.eye(16)[pids], pids, camids, paths)
    query, gallery = sets["query"], sets["gallery"]
    q = next(q for q in range(len(query)) if ((gallery.pids == query.pids[q]) & (gallery.camids == query.camids[q])).any())
    query = query.subset([q, *(r for r in range(len(query)) if r != q)])  # query 0 has an image to ignore
    same, same_cam = gallery.pids == query.pids[0], gallery.camids == query.camids[0]
    first = {MATCH: (same & ~same_cam), MISS: ~same, IGNORED: (same & same_cam)}
    head = [int(mask.nonzero()[0]) for mask in first.values()]
    order = [head + [g for g in range(len(gallery)) if g not in head] for _ in range(len(query))]
    index = torch.tensor(order)
    distance = torch.arange(index.shape[1], dtype=torch.float32).repeat(len(query), 1) / 10
    query.save(out / "q.npz")
    gallery.save(out / "g.npz")
    write_ranked(out / "after.npz", index, distance, query.paths, gallery.paths)
    write_ranked(out / "before.npz", index.flip(1), distance, query.paths, gallery.paths)  # reversed
    return {"dir": out, "root": tiny_market, "query": query, "gallery": gallery, "index": index,
            "kinds": list(first)}


def show(files, out, *extra, ranked="after.npz", query="q.npz", gallery="g.npz", root=None):
    d = files["dir"]
    return main(["show", "--ranked", str(d / ranked), "--query", str(d / query), "--gallery", str(d / gallery),
                 "--root", str(root or files["root"]), "--out", str(out), *extra])


def frame(image, corner):
    """The colour of a tile's frame, at two opposite corners of it."""
    x, y = corner
    w, h = SIZE[0] + 2 * BORDER, SIZE[1] + 2 * BORDER
    colours = {image.getpixel((x + 1, y + 1)), image.getpixel((x + w - 2, y + h - 2))}
    assert len(colours) == 1, colours
    return colours.pop()


def test_png_frames_say_match_non_match_and_ignored(files, tmp_path, capsys):
    assert show(files, tmp_path / "r.png", "--queries", "2", "--top", "4") == 0
    assert "2 queries, top 4" in capsys.readouterr().out
    image = Image.open(tmp_path / "r.png").convert("RGB")
    layout = Layout(SIZE, top=4, lists=1)
    assert image.size == layout.canvas(2)
    assert frame(image, layout.query_corner(0)) == frame(image, layout.query_corner(1)) == FRAMES[QUERY]
    # ranks 1-3 of query 0: a match (green), a non-match (red), its identity in its own camera (grey, ignored)
    assert [frame(image, layout.tile_corner(0, 0, r)) for r in range(3)] == [FRAMES[k] for k in files["kinds"]]


def test_png_lists_before_and_after_side_by_side(files, tmp_path):
    assert show(files, tmp_path / "r.png", "--ranked-before", str(files["dir"] / "before.npz"),
                "--query-index", "1,0", "--top", "3") == 0
    image = Image.open(tmp_path / "r.png").convert("RGB")
    layout = Layout(SIZE, top=3, lists=2)
    assert image.size == layout.canvas(2)
    # block 1 is query 0: its "before" row (the reversed list) above its "after" row, rank by rank
    after = [frame(image, layout.tile_corner(1, 1, r)) for r in range(3)]
    assert after == [FRAMES[k] for k in files["kinds"]]
    gallery, query, last = files["gallery"], files["query"], files["index"][0, -1]
    expected = MISS if gallery.pids[last] != query.pids[0] else MATCH if gallery.camids[last] != query.camids[0] \
        else IGNORED
    assert frame(image, layout.tile_corner(1, 0, 0)) == FRAMES[expected]
    assert frame(image, layout.query_corner(1)) == FRAMES[QUERY]


def test_unlabelled_features_get_neutral_frames(files, tmp_path):
    d = files["dir"]
    for name in ("q", "g"):
        s = FeatureSet.load(d / f"{name}.npz")
        FeatureSet(s.feats, paths=s.paths).save(tmp_path / f"{name}.npz")
    assert main(["show", "--ranked", str(d / "after.npz"), "--query", str(tmp_path / "q.npz"), "--gallery",
                 str(tmp_path / "g.npz"), "--root", str(files["root"]), "--out", str(tmp_path / "r.png"),
                 "--queries", "1", "--top", "3"]) == 0
    image = Image.open(tmp_path / "r.png").convert("RGB")
    layout = Layout(SIZE, top=3, lists=1)
    assert [frame(image, layout.tile_corner(0, 0, r)) for r in range(3)] == [FRAMES[UNLABELLED]] * 3


class Page(HTMLParser):
    """The query rows, <img> sources, tile kinds, captions and every link-like attribute of a page."""

    def __init__(self, text):
        super().__init__()
        self.rows, self.images, self.kinds, self.links, self.captions, self.in_caption = 0, [], [], [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.rows += tag == "tr" and attrs.get("class") == "query"
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "figure":
            self.kinds.append(attrs["class"])
        self.in_caption = tag == "figcaption"
        self.links += [v for k, v in attrs.items() if k in ("src", "href", "srcset", "action", "data")]

    def handle_data(self, data):
        if self.in_caption:
            self.captions.append(data)
            self.in_caption = False


def test_html_is_one_self_contained_page(files, tmp_path):
    assert show(files, tmp_path / "r.html", "--ranked-before", str(files["dir"] / "before.npz"),
                "--queries", "3", "--top", "5") == 0
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    page = Page(text)
    assert page.rows == 3
    assert len(page.images) == 3 * (1 + 2 * 5)  # each query, and 5 tiles in each of two lists
    assert all(src.startswith("data:image/jpeg;base64,") for src in page.images)
    assert all(link.startswith("data:") for link in page.links)
    assert not re.search(r"https?:|url\(|@import|<script|<link", text, re.I)  # nothing is fetched
    # query 0's "after" list: match, non-match, ignored (not a match)
    assert page.kinds[:1] == ["query"] and page.kinds[6:9] == ["match", "nonmatch", "ignored"]
    assert page.captions[8].splitlines()[-1] == "ignored"


def test_csv_and_json_rankings_read_as_the_npz(files, tmp_path):
    query, gallery, index = files["query"], files["gallery"], files["index"]
    distance = torch.rand(index.shape).sort(1).values
    for suffix in ("csv", "json"):
        for paths in ((query.paths, gallery.paths), (None, None)):  # by path, or by row number
            path = write_ranked(tmp_path / f"r.{suffix}", index, distance, *paths)
            got_index, got_distance = read_ranked(path, query.paths, gallery.paths)
            assert np.array_equal(got_index, index.numpy())
            assert np.allclose(got_distance, distance.numpy(), atol=1e-6)
    assert show(files, tmp_path / "r.png", ranked=str(path), query=files["dir"] / "q.npz") == 0


def test_train_and_demo_picture_uses_the_same_drawing(files, tmp_path):
    from reidgraph.engine.pipeline import picture

    query = files["query"].subset([0])
    query.paths = [str(files["root"] / p) for p in query.paths]
    gallery = files["gallery"].subset(range(len(files["gallery"])))
    gallery.paths = [str(files["root"] / p) for p in gallery.paths]
    top = files["index"][:1, :10]
    image = Image.open(picture(tmp_path, query, gallery, top, top)).convert("RGB")
    layout = Layout(SIZE, top=10, lists=2)
    for row in (0, 1):  # FEN and + FFGNN: the ignored image is grey, not green
        assert [frame(image, layout.tile_corner(0, row, r)) for r in range(3)] == [FRAMES[k] for k in files["kinds"]]


def bad(files, tmp_path, capsys, *extra, **where):
    assert show(files, tmp_path / "r.png", *extra, **where) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("reidgraph show: error: "), err
    assert not (tmp_path / "r.png").exists()
    return err


def test_missing_image_names_the_file_and_root(files, tmp_path, capsys):
    err = bad(files, tmp_path, capsys, root=tmp_path)
    assert "q.npz" in err and "is not under --root" in err and "pass the folder" in err


def test_features_without_paths_are_refused(files, tmp_path, capsys):
    s = files["gallery"]
    FeatureSet(s.feats, s.pids, s.camids).save(tmp_path / "g.npz")
    err = bad(files, tmp_path, capsys, gallery=tmp_path / "g.npz")
    assert f"gallery features {tmp_path / 'g.npz'} has no paths" in err


def test_a_ranked_file_of_other_features_is_refused(files, tmp_path, capsys):
    query, gallery, index = files["query"], files["gallery"], files["index"]
    distance = torch.zeros(index.shape)
    query.subset(range(len(query) - 1)).save(tmp_path / "fewer_q.npz")  # row count
    err = bad(files, tmp_path, capsys, query=tmp_path / "fewer_q.npz")
    assert "after.npz" in err and "query features" in err and "ranked from" in err
    write_ranked(tmp_path / "plain.npz", index, distance)  # no stored paths: index range
    gallery.subset(range(len(gallery) - 2)).save(tmp_path / "fewer_g.npz")
    err = bad(files, tmp_path, capsys, ranked=tmp_path / "plain.npz", gallery=tmp_path / "fewer_g.npz")
    assert "plain.npz lists gallery row" in err
    gallery.subset(list(range(len(gallery)))[::-1]).save(tmp_path / "reordered_g.npz")  # stored paths
    err = bad(files, tmp_path, capsys, gallery=tmp_path / "reordered_g.npz")
    assert "gallery_paths differ from the gallery features' paths" in err
    path = write_ranked(tmp_path / "r.csv", index, distance, query.paths, gallery.paths)
    rows = list(csv.reader(path.open()))
    rows[1][2] = "elsewhere/0001_c1s1_000001_00.jpg"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    err = bad(files, tmp_path, capsys, ranked=path)
    assert "r.csv" in err and "'elsewhere/0001_c1s1_000001_00.jpg' is not an image of the gallery" in err


@pytest.mark.parametrize("extra, words", [
    (("--query-index", "0,99"), "--query-index 99 is outside [0, "),
    (("--query-index", "0,x"), "not comma-separated row numbers"),
    (("--queries", "0"), "--queries 0 is below 1"),
    (("--top", "999"), "--top 999 is outside [1, "),
])
def test_bad_choices_are_one_line(files, tmp_path, capsys, extra, words):
    assert words in bad(files, tmp_path, capsys, *extra)


def test_unknown_output_extension(files, tmp_path, capsys):
    assert show(files, tmp_path / "r.jpg") == 2
    assert "end the name in .png" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_a_browser_shows_each_query_row(files, tmp_path):
    """Chromium opens the page from disk; in its screenshot, each query's blue frame is found at the left, with
    green or red frames to its right in the same band."""
    assert show(files, tmp_path / "r.html", "--ranked-before", str(files["dir"] / "before.npz"),
                "--queries", "2", "--top", "5") == 0
    shot = tmp_path / "shot.png"
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-color-profile=srgb", f"--user-data-dir={tmp_path / 'profile'}",
                           "--window-size=1000,1000", f"--screenshot={shot}", (tmp_path / "r.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)

    def near(colour):
        return (np.abs(pixels - np.array(colour)) <= 3).all(axis=2)

    # A frame's top and bottom edges are horizontal runs of its colour as wide as the tile
    width, height = SIZE[0] + 2 * BORDER, SIZE[1] + 2 * BORDER
    blue = near(FRAMES[QUERY])
    edges = [y for y in range(blue.shape[0]) if blue[y].sum() >= width - 1]
    tops = [y for y in edges if y - 1 not in edges]
    assert len(tops) == 4, tops  # two queries: the top and bottom edge of each frame
    for top, bottom in zip(tops[::2], tops[1::2]):
        assert bottom + BORDER - top == height
        xs = blue[top].nonzero()[0]
        assert xs.min() < 60 and xs.max() - xs.min() + 1 == width  # the query tile, at the left
        band = near(FRAMES[MATCH])[top:bottom] | near(FRAMES[MISS])[top:bottom]
        assert band[:, xs.max() + 1:].sum() > 5 * height  # its ranked lists beside it
