"""Atomic file writes: a reader sees the old file or the whole new one, never half."""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the real suffix last: Keras picks the file format from it
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            if os.path.isdir(tmp):
                shutil.rmtree(tmp)
            else:
                os.unlink(tmp)


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text(path, text):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
