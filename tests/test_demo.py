"""The main job, end to end, with its acceptance numbers (about a minute on 2 cores)."""
import json
import re
import subprocess
import sys

import pytest
from cli_fixtures import edgezoo


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
                                                     "report.png", "timings.json"]
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](report.png)" in (out / "report.md").read_text()
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


# Log lines of TensorFlow, absl, CUDA, LiteRT and the MLIR quantizer, by the shapes they print in.
LIBRARY_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d|WARNING: All log messages|INFO: Created TensorFlow"
                         r"|(WARNING|INFO):(tensorflow|absl)|fully_quantize:|.*(cuDNN|cuBLAS|oneDNN))")


def test_demo_model_round_trip_through_convert_and_test(demo, tmp_path, capsys):
    """The CLI path a user takes after training: convert the .keras file for a board, test the
    .tflite beside its float model; every check passes at the default thresholds, and stderr
    carries edgezoo's stage lines and nothing of TensorFlow's."""
    out, _ = demo
    keras_file = out / "model.keras"
    code, stdout, err = edgezoo("convert", keras_file, "--quantize", "int8", "--target",
                                "nrf52840", "--calib", "digits", "--out", tmp_path / "int8")
    assert code == 0, stdout + err
    assert stdout.strip().endswith("PASS")
    noise = [line for line in err.splitlines() if LIBRARY_LOG.match(line)]
    assert not noise, noise
    stages = [line for line in err.splitlines() if line.startswith("edgezoo convert: [")]
    assert len(stages) >= 4 and any("verifying on nrf52840" in line for line in stages)
    report = json.loads((tmp_path / "int8" / "report.json").read_text())
    assert report["passed"] and report["fits"] and "GELU" not in report["ops"]
    assert report["input_contract"]["origin"] == "recorded in model.keras (registry entry vit_micro)"
    assert report["agreement"]["value"] >= report["thresholds"]["top1_agreement"] == 0.98
    assert report["agreement"]["informative"] and report["agreement"]["samples"] == 360
    assert report["provenance"]["recipe"]["rewrites"] == ["gelu", "dense_as_conv1x1"]
    from edgezoo.cli import main  # the same command in-process (the process-level checks are above)

    code = main(["test", str(tmp_path / "int8" / "model.tflite"), "--target", "nrf52840",
                 "--keras", str(keras_file), "--data", "digits", "--json",
                 "--out", str(tmp_path / "tested")])
    stdout, err = capsys.readouterr()
    assert code == 0, stdout + err
    tested = json.loads(stdout)
    assert tested["passed"] is True
    assert set(tested["checks"]) == {"micro_vs_reference_per_op", "default_vs_micro_top1",
                                     "agreement_top1", "agreement_informative", "fits"}
    assert tested["checks"]["agreement_top1"]["value"] == tested["agreement"]["value"] >= 0.98
    assert tested["agreement"]["value"] == report["agreement"]["value"]  # same data, same verdict
    assert tested["arena_bytes"] == report["arena_bytes"]
    assert tested["inputs"] == "digits test split (360 samples)"
    assert set(tested["accuracy"]) == {"float", "converted_tflite-micro"}
    assert tested["timings"]["float_ms"] > 0 and tested["latency_estimate"]["estimate_ms"] > 0
    assert sorted(p.name for p in (tmp_path / "tested").iterdir()) == ["report.json", "report.md",
                                                                      "report.png"]
