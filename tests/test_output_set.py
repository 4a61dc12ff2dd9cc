"""--out is shown whole or not at all: the old set or the new one, never a mix; one run at a time."""
import os
import shutil
import signal
import threading

import pytest
from cli_fixtures import TRACEBACK, edgezoo_process, set_files, tiny_classifier

from edgezoo.cli import main
from edgezoo.base.errors import DataError
from edgezoo.base.output_set import OutputSet, output_set, sets_dir


def _write(folder, **files):
    for name, text in files.items():
        (folder / name).write_text(text)


def test_a_set_appears_only_when_complete(tmp_path):
    out = tmp_path / "o"
    with output_set(out) as folder:
        _write(folder, a="1", b="1")
        assert not out.exists()  # nothing shown while writing
    assert {k: v.decode() for k, v in set_files(out).items()} == {"a": "1", "b": "1"}
    with pytest.raises(RuntimeError):
        with output_set(out) as folder:
            _write(folder, a="2")
            raise RuntimeError("the run dies half-way")
    assert {k: v.decode() for k, v in set_files(out).items()} == {"a": "1", "b": "1"}
    assert not list(sets_dir(out).glob("*.partial"))
    for n in (3, 4):
        with output_set(out) as folder:
            _write(folder, c=str(n))
    assert {k: v.decode() for k, v in set_files(out).items()} == {"c": "4"}  # b is gone: no mix
    kept = [p for p in sets_dir(out).iterdir() if p.is_dir()]
    assert len(kept) == 2 and out.resolve() in [p.resolve() for p in kept]  # the newest two


def test_a_second_run_into_the_same_out_is_refused_before_any_work(tmp_path, capsys):
    model, data = tiny_classifier(tmp_path / "m")
    out = tmp_path / "o"
    holder = OutputSet(out)
    holder.open()
    try:
        code = main(["convert", str(model), "--calib", str(data), "--target", "rpi4",
                     "--out", str(out)])
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert code == 2 and "being written by another edgezoo run (pid" in err
    assert err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("make, message", [
    (lambda o: o.write_text("x"), "is a file"),
    (lambda o: (o.mkdir(), (o / "notes.txt").write_text("mine")), "a folder with other files"),
    (lambda o: os.symlink("/tmp", o), "a link edgezoo did not make"),
])
def test_an_out_that_cannot_hold_a_set_is_refused(tmp_path, make, message):
    out = tmp_path / "o"
    make(out)
    with pytest.raises(DataError, match=message):
        OutputSet(out).open()


def test_an_older_plain_folder_is_adopted_and_a_killed_runs_leftovers_removed(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "report.json").write_text("{}")  # what an earlier edgezoo wrote straight into --out
    sets = sets_dir(out)
    (sets / "7.partial").mkdir(parents=True)  # left by a SIGKILLed run
    with output_set(out) as folder:
        _write(folder, **{"report.json": "new"})
    assert out.is_symlink() and set_files(out) == {"report.json": b"new"}
    assert not (sets / "7.partial").exists()


@pytest.fixture(scope="module")
def old_set(tmp_path_factory):
    """A tiny model, its data, and a complete output set from a first conversion."""
    tmp = tmp_path_factory.mktemp("signals")
    model, data = tiny_classifier(tmp / "m")
    out = tmp / "old"
    assert main(["convert", str(model), "--calib", str(data), "--target", "rpi4",
                 "--out", str(out)]) in (0, 1)
    return model, data, out


def _copy_set(src, dst):
    shutil.copytree(sets_dir(src), sets_dir(dst), symlinks=True)
    os.symlink(os.path.join(sets_dir(dst).name, os.path.basename(os.readlink(src))), dst)


def _signal_when(proc, stage, sig, seen):
    for line in proc.stderr:  # wait until the long work is under way
        seen.append(line)
        if stage in line:
            proc.send_signal(sig)
            break
    seen.append(proc.stderr.read())


def test_signals_leave_the_old_set_and_say_so_in_one_line(old_set, tmp_path):
    """SIGTERM and Ctrl-C while TFLite Micro runs in child processes exit 143 and 130 with one
    line; SIGKILL ends at once. In every case --out still shows the earlier run's complete set,
    byte for byte."""
    model, data, old = old_set
    before = set_files(old)
    runs = {}
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        out = tmp_path / sig.name
        _copy_set(old, out)
        proc = edgezoo_process("convert", model, "--calib", data, "--target", "nrf52840",
                               "--seed", "1", "--out", out)
        seen = []
        watcher = threading.Thread(target=_signal_when, args=(proc, "verifying on", sig, seen))
        watcher.start()
        runs[sig] = out, proc, seen, watcher
    for sig, (out, proc, seen, watcher) in runs.items():
        proc.wait(timeout=240)
        watcher.join(timeout=30)
        err = "".join(seen)
        assert TRACEBACK not in err, err
        expected = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGKILL: -9}[sig]
        assert proc.returncode == expected, err
        if sig != signal.SIGKILL:
            last = err.strip().splitlines()[-1]
            assert last.startswith("edgezoo convert: ") and "outputs are as they were" in last
        assert set_files(out) == before, f"{sig.name} changed the output set"
