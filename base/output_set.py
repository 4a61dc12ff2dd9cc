"""An ``--out`` folder written as a whole: a reader sees the old set of files or the new one.

``--out o`` is a symbolic link to a versioned folder ``.o.sets/N`` beside it. A run
holds an exclusive lock on ``.o.sets/lock`` from before its long work to its end
(a second run into the same ``--out`` is refused at once), writes every file into
a fresh ``.o.sets/N.partial``, and only then renames it to ``N`` and swaps the link
with one ``rename(2)``. Whatever ends a run early (an error, Ctrl-C, SIGTERM,
SIGKILL, a power cut) leaves ``o`` pointing at the last complete set; a killed
run's ``.partial`` folder is removed by the next run. The set before the newest
is kept, so a reader that resolved the old link can finish reading it.
"""
import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from edgezoo.base.errors import DataError
from edgezoo.base.files import check_folder

# What older edgezoo versions wrote straight into --out: such a folder is moved aside as set 0.
KNOWN_FILES = {"model.tflite", "model_data.h", "model_data.cc", "report.json", "report.md",
               "timings.json", "model.keras", "report.png", "manifest.json"}


def sets_dir(out):
    out = Path(out)
    return out.parent / f".{out.name}.sets"


def _versions(sets):
    return sorted(int(p.name) for p in sets.iterdir() if p.name.isdigit())


def check(out):
    """Refuse an ``--out`` that cannot hold an output set, before any work."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        raise DataError(f"--out {out}: give a folder name (it becomes a link to the newest "
                        "output set)")
    if out.is_symlink():
        target = Path(os.readlink(out))
        if target.parent.name != sets_dir(out).name:
            raise DataError(f"--out {out} is a link edgezoo did not make; give another folder")
    elif out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder (it is created if missing)")
    elif out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in KNOWN_FILES)
        if others:
            raise DataError(f"--out {out} is a folder with other files ({', '.join(others[:3])}"
                            f"{', ...' if len(others) > 3 else ''}); edgezoo replaces --out as a "
                            "whole: give a new or empty folder")
    check_folder(out.parent)


class OutputSet:
    """The lock, the staging folder and the link swap of one run into ``out``."""

    def __init__(self, out):
        self.out = Path(out)
        self.sets = sets_dir(self.out)
        self._lock = None
        self.folder = None

    def open(self):
        check(self.out)
        try:
            self.sets.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.sets / "lock", "a+")
        except OSError as exc:
            raise DataError(f"--out {self.out}: cannot write beside it ({exc.strerror})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            self._lock.close()
            self._lock = None
            raise DataError(f"--out {self.out} is being written by another edgezoo run "
                            f"({holder}); wait for it to end or choose another --out") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"pid {os.getpid()}\n")
        self._lock.flush()
        for stale in self.sets.glob("*.partial"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        self._adopt_plain_folder()
        versions = _versions(self.sets)
        self.version = (versions[-1] + 1) if versions else 1
        self.folder = self.sets / f"{self.version}.partial"
        self.folder.mkdir()
        return self.folder

    def _adopt_plain_folder(self):
        """An existing real --out folder (empty, or an older edgezoo's files) becomes set 0."""
        if self.out.is_dir() and not self.out.is_symlink():
            if (self.sets / "0").exists():
                shutil.rmtree(self.sets / "0")
            os.rename(self.out, self.sets / "0")
            self._link(self.sets / "0")

    def _link(self, folder):
        tmp = self.out.parent / f".{self.out.name}.link-{os.getpid()}"
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(os.path.relpath(folder, self.out.parent), tmp)
        os.replace(tmp, self.out)  # one rename: readers see the old link or the new one

    def commit(self):
        final = self.sets / str(self.version)
        os.rename(self.folder, final)
        self._link(final)
        self.folder = final
        for old in _versions(self.sets)[:-2]:  # keep the newest two
            shutil.rmtree(self.sets / str(old), ignore_errors=True)

    def discard(self):
        if self.folder is not None and self.folder.name.endswith(".partial"):
            shutil.rmtree(self.folder, ignore_errors=True)

    def close(self):
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None


@contextlib.contextmanager
def output_set(out):
    """``with output_set(out) as folder:`` write into ``folder``; ``out`` shows it only if the
    block ends normally."""
    outset = OutputSet(out)
    folder = outset.open()
    try:
        yield folder
        outset.commit()
    except BaseException:
        outset.discard()
        raise
    finally:
        outset.close()
