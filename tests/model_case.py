"""Shared checks every model family runs: build, forward, config and .keras round trips,
float TFLite agreement, int8 conversion for a microcontroller, and edgezoo's one verification
path (TFLite Micro vs LiteRT reference kernels op by op, default LiteRT, arena, budget)."""
import dataclasses

import numpy as np
import tf_keras as keras

from edgezoo.convert import convert_model
from edgezoo.converters.quantize import convert
from edgezoo.edge.profiles import get_profile
from edgezoo.edge.verification import top1, verify

FLOAT_TFLITE_RTOL = 1e-5  # float TFLite vs Keras, relative to the largest output magnitude


@dataclasses.dataclass
class ModelCheck:
    """What a family's test asserts on; every field was measured, none is assumed."""

    output_shape: tuple
    config_max_diff: float
    keras_file_max_diff: float
    float_tflite_rel_diff: float
    report: dict
    runtimes: dict
    tflite: bytes = b""
    parsed: object = None


def samples_for(model, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (n, *model.input_shape[1:])).astype(np.float32)


def config_round_trip(model, x):
    """Rebuild from get_config, copy weights, compare outputs."""
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return float(np.abs(clone.predict(x, verbose=0) - model.predict(x, verbose=0)).max())


def keras_file_round_trip(model, x, tmp_path):
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    return float(np.abs(loaded.predict(x, verbose=0) - model.predict(x, verbose=0)).max())


def float_tflite_rel_diff(model, x):
    """Largest |float TFLite - Keras| relative to the largest |Keras| output."""
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.runners.litert import LiteRTRunner

    data = convert(model, "none")
    runner = LiteRTRunner(data, read_tflite(data), "reference")
    ours, theirs = runner.run(x), model.predict(x, verbose=0)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-12))


def run_model_checks(model, tmp_path, x=None, target="nrf52840", calibration=None):
    """Every shared check on ``model``; returns the measurements for the caller to assert."""
    x = samples_for(model) if x is None else x
    out = model.predict(x, verbose=0)
    profile = get_profile(target)
    compressed, parsed = convert_model(model, "int8", profile,
                                       x if calibration is None else calibration)
    report = compressed.report
    runtimes = verify(compressed.tflite, parsed, profile, x)  # no float outputs: board gates
    report.update({"fits": runtimes["fits"], "arena_bytes": runtimes["arena_bytes"]})
    return ModelCheck(
        output_shape=out.shape,
        config_max_diff=config_round_trip(model, x),
        keras_file_max_diff=keras_file_round_trip(model, x, tmp_path),
        float_tflite_rel_diff=float_tflite_rel_diff(model, x),
        report=report,
        runtimes=runtimes,
        tflite=compressed.tflite,
        parsed=parsed,
    )


def assert_model_checks(check, expected_output_shape):
    """The tolerances every family meets."""
    assert check.output_shape == tuple(expected_output_shape)
    assert check.config_max_diff == 0.0
    assert check.keras_file_max_diff == 0.0
    assert check.float_tflite_rel_diff <= FLOAT_TFLITE_RTOL
    assert "GELU" not in check.report["ops"]
    checks = check.runtimes["checks"]
    assert checks["micro_vs_reference_per_op"]["passed"], checks["micro_vs_reference_per_op"]
    assert check.report["fits"] is True and check.runtimes["passed"], check.runtimes["failures"]
    assert_header_arena_runs(check)


def assert_header_arena_runs(check):
    """The C header's arena constant prepares and runs the model in TFLite Micro, and the bisected
    minimum (which runs; 16 B less does not) lies within the stated margin below it."""
    import re

    from edgezoo.converters.c_export import render_header
    from edgezoo.edge.arena import default_sample, probe_arenas

    arena = check.runtimes["arena"]
    header = render_header(check.parsed, arena)
    constant = int(re.search(r"#define EDGEZOO_TENSOR_ARENA_SIZE (\d+)", header).group(1))
    minimum = arena["minimum_bytes"]
    assert minimum <= constant <= arena["arena_bytes"] * (1 + arena["margin"]) + arena["alignment"]
    probes = probe_arenas(check.tflite, default_sample(check.parsed),
                          [minimum - arena["alignment"], minimum, constant])
    assert probes[constant][0] == "ok" and probes[minimum][0] == "ok", probes
    assert probes[minimum - arena["alignment"]][0] != "ok", probes


__all__ = ["ModelCheck", "assert_model_checks", "run_model_checks", "samples_for", "top1"]
