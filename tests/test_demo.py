"""The main job, end to end, with its acceptance numbers (about a minute on 2 cores)."""
import json
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """`edgezoo demo` twice from the same seed, side by side (each runs on one thread, as the
    demo sets op determinism with one intra-op and one inter-op thread)."""
    out = tmp_path_factory.mktemp("demo")
    procs = [subprocess.Popen([sys.executable, "-m", "edgezoo.cli", "demo", "--out", str(out / run)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for run in ("a", "b")]
    results = [proc.communicate(timeout=1200) + (proc.returncode,) for proc in procs]
    return out / "a", out / "b", results


@pytest.fixture(scope="module")
def demo(demo_runs):
    out, _, results = demo_runs
    stdout, stderr, code = results[0]
    assert code == 0, stdout + stderr
    assert stdout.strip().endswith("PASS")
    return out, json.loads((out / "report.json").read_text())


def test_demo_outputs(demo):
    out, report = demo
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "model.tflite", "model_data.cc",
                                                     "model_data.h", "report.json", "report.md",
                                                     "timings.json"]
    saved = json.loads((out / "report.json").read_text())
    for key in ("model", "params", "tflite_bytes", "arena_bytes", "ops", "target", "fits",
                "accuracy", "agreement", "checks", "thresholds", "per_op", "arena", "provenance"):
        assert key in saved, key
    assert saved["model"] == "vit_micro" and saved["target"] == "nrf52840"
    assert saved["params"] == 136_906
    assert set(saved["accuracy"]) == {"float", "converted_tflite-micro"}
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings["latency_ms"]) == {"keras", "litert_float", "litert_int8"}
    assert all(v > 0 for v in timings["latency_ms"].values()) and timings["wall_time_s"] > 0
    assert "wall_time_s" not in saved and "latency_ms" not in saved
    assert saved["macs"] > 1_000_000 and saved["float_tflite_bytes"] > saved["tflite_bytes"]
    assert set(saved["latency_estimate_ms"]) >= {"nrf52840", "stm32l4r5", "rp2040"}
    assert saved["provenance"]["seed"] == 0
    assert saved["provenance"]["recipe"]["rewrites"] == ["gelu", "dense_as_conv1x1"]
    assert saved["tflite_bytes"] == (out / "model.tflite").stat().st_size
    assert (out / "model.keras").is_file()  # a .keras zip, not a SavedModel folder


def test_demo_acceptance_numbers(demo):
    _, report = demo
    acc = report["accuracy"]
    assert report["data"]["test"] == 360  # the full digits test split
    assert acc["float"] >= 0.95
    assert abs(acc["converted_tflite-micro"] - acc["float"]) <= 0.01
    assert report["fits"] is True and report["passed"] is True, report["failures"]
    assert report["checks"]["micro_vs_reference_per_op"]["passed"]
    assert report["runtimes"]["default_vs_micro_top1"] >= 0.99
    assert report["agreement"]["value"] >= 0.98 and report["agreement"]["informative"]
    assert "GELU" not in report["ops"]
    # the header's arena constant is at least what TFLite Micro needs to run the model
    arena = report["arena"]
    assert arena["header_constant"] >= arena["minimum_bytes"] and arena["header_constant"] >= \
        arena["recorded_bytes"]


def test_two_demo_runs_from_one_seed_write_the_same_report(demo_runs):
    """Op determinism, one thread each: the same seed gives the same bytes and report.json."""
    a, b, results = demo_runs
    assert [code for *_, code in results] == [0, 0], results[1][1]
    for name in ("model.tflite", "model_data.h", "model_data.cc", "report.json", "report.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    determinism = json.loads((a / "report.json").read_text())["provenance"]["determinism"]
    assert determinism == {"op_determinism": True, "seed": 0, "intra_op_threads": 1,
                           "inter_op_threads": 1}
    assert (a / "timings.json").read_bytes() != (b / "timings.json").read_bytes()
