"""The main job, end to end, with its acceptance numbers (about a minute on 2 cores)."""
import json

import pytest

from edgezoo.demo import run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, progress=False)


def test_demo_outputs(demo):
    out, report = demo
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "model.tflite", "report.json",
                                                     "report.md"]
    saved = json.loads((out / "report.json").read_text())
    for key in ("model", "params", "tflite_bytes", "arena_bytes", "ops", "target", "fits",
                "accuracy", "agreement", "latency_ms", "provenance"):
        assert key in saved, key
    assert saved["model"] == "vit_micro" and saved["target"] == "nrf52840"
    assert saved["params"] == 136_906
    assert set(saved["accuracy"]) == {"float", "int8_litert", "int8_micro"}
    assert set(saved["latency_ms"]) == {"keras", "litert_float", "litert_int8", "estimate"}
    assert all(v > 0 for v in saved["latency_ms"].values())
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
    assert abs(acc["int8_litert"] - acc["float"]) <= 0.01
    assert abs(acc["int8_micro"] - acc["float"]) <= 0.01
    assert report["fits"] is True
    assert report["runtimes"]["micro_vs_reference_max_lsb"] <= 1
    assert report["runtimes"]["default_vs_micro_top1"] >= 0.99
    assert report["agreement"] >= 0.98
    assert "GELU" not in report["ops"]
