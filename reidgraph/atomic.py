"""Files that appear whole or not at all."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_args) -> Iterator[IO]:
    """Open a new file beside ``path`` for writing; once the block ends it is flushed to disk and renamed over
    ``path`` in one step. If the block raises, it is removed and ``path`` is left as it was.

    The file is created exclusively under a unique name (``tempfile.mkstemp`` in ``path``'s folder, mode 0600
    before the rename gives it the umask's), so two writers of one ``path`` never share it, and a link planted
    under a predictable name cannot redirect the bytes: the last rename wins, whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(handle, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def check_writable(path: str | Path, flag: str, inputs: tuple[str | Path, ...] = ()) -> None:
    """A one-line ``ValueError`` naming ``flag`` where ``path`` cannot take an output file: a folder, under a
    regular file, in a folder this process cannot write, or one of ``inputs`` (writing would destroy it).
    Checked before the work, so a run does not find out only at its end."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name inside it")
    for given in inputs:
        if given is not None and Path(given).exists() and path.exists() and path.resolve() == Path(given).resolve():
            raise ValueError(f"{flag} {path} is also an input; write the output to another file")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: {parent} is a file, not a folder; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: cannot write in {parent} (permission denied); choose a writable folder")
