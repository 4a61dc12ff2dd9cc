"""Fuzzing the CLI's inputs in-process through ``main(argv)``: recipe files, calibration arrays,
profile files, ``--out`` paths, shapes, targets and model files, drawn at random.

Every case must end in exit 0 or 1 (a run, with a complete new output set) or 2 (one
``error:`` line, the old output set untouched); never a traceback, an internal error or a
mixed set. Subprocesses are left to the signal tests (tests/test_output_set.py): TensorFlow
takes 15-20 s to import, and the code path is the same.
"""
import collections
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_fixtures import TRACEBACK, set_files, tiny_classifier

from edgezoo.cli import main
from edgezoo.base.output_set import sets_dir

SET_FILES = {"model.tflite", "model_data.h", "model_data.cc", "report.json", "report.md",
             "report.png", "timings.json"}
TEST_SET_FILES = {"report.json", "report.md", "report.png"}


def _files(root, model, data):
    """Every value the fuzzer draws from, good and bad, made once: {field: {label: value}}."""
    root.mkdir()
    rng = np.random.default_rng(0)
    x, y = np.load(data)["x"], np.load(data)["y"]
    arrays = {
        "nan": np.full((8, 8, 8, 1), np.nan, np.float32), "inf": np.full((8, 8, 8, 1), np.inf),
        "1e20": np.full((8, 8, 8, 1), 1e20, np.float32), "3e38": np.full((8, 8, 8, 1), 3e38),
        "negative-huge": np.full((8, 8, 8, 1), -3e38), "empty": np.zeros((0, 8, 8, 1)),
        "strings": np.full((8, 8, 8, 1), "a"), "complex": np.ones((8, 8, 8, 1), np.complex64),
        "bool": np.ones((8, 8, 8, 1), bool), "shape": rng.uniform(size=(8, 16, 16, 1)),
        "rank": rng.uniform(size=(8, 64)), "scalar": np.float32(0.5),
        "range": rng.uniform(2, 255, size=(8, 8, 8, 1)), "int64-big": np.full((8, 8, 8, 1), 2**62),
    }
    calib = {"good": data}
    for name, arr in arrays.items():
        np.save(root / f"{name}.npy", arr)
        calib[name] = root / f"{name}.npy"
    np.savez(root / "labels-range.npz", x=x, y=y + 7)
    np.savez(root / "labels-length.npz", x=x, y=y[:-3])
    np.savez(root / "labels-float.npz", x=x, y=y + 0.5)
    np.savez(root / "no-x.npz", inputs=x)
    np.save(root / "object.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    (root / "truncated.npy").write_bytes((root / "nan.npy").read_bytes()[:100])
    (root / "text.npy").write_text("not numpy")
    (root / "dir.npy").mkdir()
    calib.update({n: root / f"{n}.npz" for n in ("labels-range", "labels-length", "labels-float",
                                                 "no-x")})
    calib.update({n: root / f"{n}.npy" for n in ("object", "truncated", "text", "dir")})
    calib.update({"missing": root / "missing.npy", "unknown-set": "imagenet", "txt": root / "x.txt"})

    recipes = {"none": None}
    texts = {"good": '{"seed": 1}', "not-json": "{prune: 0.5", "array": "[1, 2]", "nan": '{"prune": NaN}',
             "infinity": '{"temperature": Infinity}', "unknown-key": '{"clusters": 8}',
             "wrong-type": '{"prune": "half"}', "prune-2": '{"prune": 2.0}', "prune-neg": '{"prune": -0.1}',
             "cluster-0": '{"cluster": 0}', "epochs-neg": '{"finetune_epochs": -1}',
             "deep": "[" * 100000 + "]" * 100000, "empty": "", "quantize": '{"quantize": "int3"}',
             "null-bytes": '{"seed": 1}\x00\x00', "big-int": '{"seed": 1' + "0" * 400 + "}",
             "2of4-conflict": '{"prune_2of4": true, "prune": 0.3}'}
    for name, text in texts.items():
        (root / f"recipe-{name}.json").write_text(text)
        recipes[name] = root / f"recipe-{name}.json"
    (root / "recipe-latin1.json").write_bytes(b'{"seed": 1, "note": "caf\xe9"}')
    (root / "recipe-dir.json").mkdir()
    recipes.update(latin1=root / "recipe-latin1.json", dir=root / "recipe-dir.json",
                   missing=root / "recipe-missing.json")

    good_board = dict(description="fuzz", core="cortex-m4", clock_mhz=64, flash_bytes=1 << 20,
                      ram_bytes=256 * 1024, flash_reserve_bytes=0, ram_margin_bytes=0,
                      runtime="tflite-micro")
    profiles = {"none": None}
    boards = {"good": json.dumps({"fuzzboard": good_board}),
              "nan": json.dumps({"fuzzboard": {**good_board, "clock_mhz": float("nan")}}),
              "infinity": json.dumps({"fuzzboard": {**good_board, "ram_bytes": float("inf")}}),
              "negative": json.dumps({"fuzzboard": {**good_board, "flash_bytes": -1}}),
              "missing-field": json.dumps({"fuzzboard": {"runtime": "tflite-micro"}}),
              "runtime": json.dumps({"fuzzboard": {**good_board, "runtime": "tvm"}}),
              "string": json.dumps({"fuzzboard": {**good_board, "ram_bytes": "lots"}}),
              "list": "[1]", "not-json": "{", "entry-list": json.dumps({"fuzzboard": [1]})}
    for name, text in boards.items():
        (root / f"boards-{name}.json").write_text(text)
        profiles[name] = root / f"boards-{name}.json"
    (root / "boards-binary.json").write_bytes(bytes(range(256)))
    profiles["binary"] = root / "boards-binary.json"

    (root / "afile").write_text("x")
    (root / "full").mkdir()
    (root / "full" / "mine.txt").write_text("mine")
    os.symlink("/tmp", root / "foreign-link")
    outs = {"fresh": None, "old-set": None, "afile": root / "afile", "under-file": root / "afile" / "o",
            "foreign": root / "full", "link": root / "foreign-link", "proc": Path("/proc/edgezoo/o"),
            "dot": Path(".")}

    junk = root / "junk.keras"
    junk.write_bytes(rng.bytes(3000))
    (root / "empty.keras").write_bytes(b"")
    (root / "dir.keras").mkdir()
    (root / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + rng.bytes(500))
    models = {"good": model, "junk": junk, "empty": root / "empty.keras", "dir": root / "dir.keras",
              "missing": root / "missing.keras", "h5-junk": root / "junk.h5",
              "unknown-name": "vit_b61", "txt": root / "model.txt"}
    targets = {"good": "rpi4", "micro": "nrf52840", "unknown": "arduino", "empty": "",
               "near": "nrf5284", "path": "../etc/passwd"}
    shapes = {"none": None, "zero": "0,8,1", "negative": "-8,8,1", "huge": "100000,100000,1",
              "words": "a,b,c", "empty": "", "float": "8.5,8,1"}
    return {"model": models, "calib": calib, "recipe": recipes, "profiles": profiles, "out": outs,
            "target": targets, "shape": shapes}


GOOD = {"model": "good", "calib": "good", "recipe": "none", "profiles": "none", "out": "fresh",
        "target": "good", "shape": "none"}
# Values that are valid too (outcome 0 or 1), beside "good".
VALID = {"recipe": {"none", "good"}, "profiles": {"none", "good"}, "out": {"fresh", "old-set"},
         "target": {"good", "micro"}, "shape": {"none"}, "model": {"good"}, "calib": {"good"}}


def _draw(rng, pools, commands, valid_share):
    """One case: a command and, for each field, "good" or a drawn value (some bad unless the
    case is drawn valid)."""
    command = rng.choice(commands)
    fields = dict(GOOD)
    fields["out"] = rng.choice(["fresh", "old-set"])
    wanted = [f for f in pools if f not in ("recipe", "shape") or command == "convert"]
    if command == "convert":
        wanted.remove("profiles")
    if rng.random() < valid_share:
        for field in wanted:
            fields[field] = rng.choice(sorted(VALID[field]))
        return command, fields
    for field in rng.sample(wanted, rng.choice([1, 1, 2, 3])):
        fields[field] = rng.choice(sorted(set(pools[field]) - VALID[field]))
    return command, fields


def _argv(command, fields, pools, tflite, out):
    value = {f: pools[f][v] for f, v in fields.items()}
    if command == "convert":
        model = "vit_micro" if fields["shape"] != "none" else value["model"]
        argv = ["convert", str(model), "--calib", str(value["calib"]), "--target", value["target"],
                "--out", str(out)]
        if value["recipe"] is not None:
            argv += ["--recipe", str(value["recipe"])]
        if value["shape"] is not None:
            argv += ["--input-shape", value["shape"]]
        return argv
    target = "fuzzboard" if fields["profiles"] != "none" else value["target"]
    argv = ["test", str(tflite if fields["model"] == "good" else value["model"]), "--target",
            target, "--float", str(pools["model"]["good"]), "--data", str(value["calib"]),
            "--out", str(out)]
    if value["profiles"] is not None:
        argv += ["--profiles", str(value["profiles"])]
    return argv


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    model, data = tiny_classifier(root / "model")
    old = root / "old"
    assert main(["convert", str(model), "--calib", str(data), "--target", "rpi4", "--out",
                 str(old)]) == 0
    return root, _files(root / "pool", model, data), old, old / "model.tflite"


def _run_case(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def fuzz(fuzz_world, capsys, cases, valid_share, seed):
    root, pools, old, tflite = fuzz_world
    rng = random.Random(seed)
    outcomes, problems = collections.Counter(), []
    for i in range(cases):
        command, fields = _draw(rng, pools, ["convert", "test"], valid_share)
        out = pools["out"][fields["out"]]
        if out is None:
            out = root / "cases" / f"{seed}-{i}"
            out.parent.mkdir(exist_ok=True)
            if fields["out"] == "old-set":
                shutil.copytree(sets_dir(old), sets_dir(out), symlinks=True)
                os.symlink(os.path.join(sets_dir(out).name,
                                        os.path.basename(os.readlink(old))), out)
        ours = not out.exists() or (out.is_symlink() and sets_dir(out).is_dir())
        before = set_files(out) if ours else None
        argv = _argv(command, fields, pools, tflite, out)
        code, stdout, err = _run_case(capsys, argv)
        label = f"{command} {fields}"
        if TRACEBACK in stdout + err or "internal error" in err or code not in (0, 1, 2):
            problems.append(f"{label}: exit {code}: {(stdout + err)[-400:]}")
            continue
        if code == 2:
            if len([line for line in err.splitlines() if "error:" in line]) != 1:
                problems.append(f"{label}: not one error line: {err[-400:]}")
            if before is not None and set_files(out) != before:
                problems.append(f"{label}: refused, but the output set changed")
            outcomes["refused (exit 2)"] += 1
            continue
        shown = set_files(out)
        expected = SET_FILES if command == "convert" else TEST_SET_FILES
        report = json.loads(shown.get("report.json", b"{}"))
        if set(shown) != expected or report.get("passed") != (code == 0):
            problems.append(f"{label}: exit {code} but the set shows {sorted(shown)}")
        elif command == "convert" and report["tflite_bytes"] != len(shown["model.tflite"]):
            problems.append(f"{label}: report.json and model.tflite come from different runs")
        outcomes["passed (exit 0)" if code == 0 else "failed a check (exit 1)"] += 1
    with capsys.disabled():  # shown in every run, not only with -s
        print(f"\n{cases} CLI fuzz cases: " +
              ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    assert not problems, "\n".join(problems[:20])
    assert sum(outcomes.values()) == cases
    return outcomes


def test_cli_fuzz(fuzz_world, capsys):
    outcomes = fuzz(fuzz_world, capsys, cases=320, valid_share=0.02, seed=0)
    assert outcomes["refused (exit 2)"] >= 300 and outcomes["passed (exit 0)"] >= 1


@pytest.mark.slow
def test_cli_fuzz_long(fuzz_world, capsys):
    outcomes = fuzz(fuzz_world, capsys, cases=3000, valid_share=0.05, seed=1)
    assert outcomes["passed (exit 0)"] >= 10
