"""Atomic file writes: a reader sees the old file or the whole new one, never half."""
import contextlib
import json
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


def check_folder(path, what="--out"):
    """Refuse a folder that cannot be created or written, before any work."""
    from edgezoo.base.errors import DataError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is a file; give a folder (it is created if missing)")
    parent = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{what} {path}: {parent} is not a writable folder")


MAX_JSON_BYTES = 16 * 2**20


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def read_json(path, what, error, max_bytes=None):
    """A small UTF-8 JSON file, or ``error`` naming what is wrong with it (missing, a folder,
    too big, not UTF-8, not JSON, NaN or Infinity, which JSON does not have)."""
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path} does not exist")
    if not path.is_file():
        raise error(f"{what} {path} is not a file")
    try:
        limit = max_bytes or MAX_JSON_BYTES
        if path.stat().st_size > limit:
            raise error(f"{what} {path} is over {limit // 2**20} MiB"
                        + ("; it should be a few lines of JSON" if max_bytes is None else ""))
        text = path.read_bytes().decode("utf-8")
        return json.loads(text, parse_constant=_no_constant)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}); it must be JSON") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise error(f"{what} {path} is not valid JSON: {exc}") from None


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text(path, text):
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def keras_zip_record(path, member):
    """The JSON record ``member`` that edgezoo keeps inside a ``.keras`` zip, or None (another
    format, or no such record). Raises ValueError when the record is not JSON."""
    import zipfile

    path = Path(path)
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        if member not in archive.namelist():
            return None
        return json.loads(archive.read(member))
