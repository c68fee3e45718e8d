"""Files that appear whole or not at all: unique temporary files, concurrent writers, planted links."""
import multiprocessing
import os

import pytest

from reidgraph.atomic import atomic_write, check_writable


def write_many(path, byte, size):
    for _ in range(20):
        with atomic_write(path, "wb") as f:
            f.write(byte * size)


def test_two_concurrent_writers_leave_one_whole_file_and_no_temporary(tmp_path):
    out = tmp_path / "out.bin"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=write_many, args=(out, b, 1 << 20)) for b in (b"a", b"b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    data = out.read_bytes()
    assert len(data) == 1 << 20 and data in (b"a" * (1 << 20), b"b" * (1 << 20))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_planted_link_under_the_old_temporary_name_is_left_alone(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / ".out.csv.tmp")
    with atomic_write(tmp_path / "out.csv") as f:
        f.write("ranked")
    assert victim.read_text() == "keep me" and (tmp_path / "out.csv").read_text() == "ranked"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(out) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_the_file_gets_the_usual_permissions(tmp_path):
    with atomic_write(tmp_path / "out.txt") as f:
        f.write("x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ValueError, match="is a folder; give a file name inside it"):
        check_writable(tmp_path, "--out")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_writable(tmp_path / "plain" / "out.npz", "--out")
    with pytest.raises(ValueError, match="is also an input"):
        check_writable(tmp_path / "plain", "--out", (None, tmp_path / "." / "plain"))
    check_writable(tmp_path / "new" / "deeper" / "out.npz", "--out")  # folders to be made: fine


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="permission denied"):
            check_writable(folder / "out.npz", "--out")
    finally:
        folder.chmod(0o755)
