"""Shared checks for the model families, in two parts.

Graph checks run for every model: each layer's get_config round trip, a
functional graph, the model's config and .keras round trips (identical
outputs), batch-size independence and float TFLite agreement.

Board checks run only where a target applies (``target=``, an
``edgezoo.edge.profiles`` name such as ``"nrf52840"``; None, the default, runs
none): int8 conversion for that board and edgezoo's one verification path
(TFLite Micro vs LiteRT reference kernels op by op, default LiteRT, arena,
budget), and the C header's arena constant run in TFLite Micro.
"""
import dataclasses

import numpy as np
import tf_keras as keras

from edgezoo.convert import convert_model
from edgezoo.converters.quantize import convert
from edgezoo.edge.profiles import get_profile
from edgezoo.edge.verification import top1, verify

FLOAT_TFLITE_RTOL = 1e-5  # float TFLite vs Keras, relative to the largest output magnitude
BATCH_RTOL = 1e-5  # one sample at a time vs the whole batch, relative to the largest output


@dataclasses.dataclass
class GraphCheck:
    """What the graph checks measured; every field was measured, none is assumed."""

    output_shape: tuple
    config_max_diff: float
    keras_file_max_diff: float
    float_tflite_rel_diff: float
    functional: bool = True
    layer_config_mismatches: tuple = ()
    batch_rel_diff: float = 0.0


@dataclasses.dataclass
class ModelCheck(GraphCheck):
    """Graph checks, plus the board checks' results where ``target`` is set (else None)."""

    target: str | None = None
    report: dict | None = None
    runtimes: dict | None = None
    tflite: bytes = b""
    parsed: object = None


def samples_for(model, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, (n, *model.input_shape[1:])).astype(np.float32)


def _stacked(outputs):
    """One (N, -1) array of a model's outputs, several outputs side by side (detectors)."""
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return np.concatenate([np.asarray(o).reshape(len(o), -1) for o in outputs], 1)


def _predict(model, x, **kwargs):
    return _stacked(model.predict(x, verbose=0, **kwargs))


def config_round_trip(model, x):
    """Rebuild from get_config, copy weights, compare outputs."""
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return float(np.abs(_predict(clone, x) - _predict(model, x)).max())


def keras_file_round_trip(model, x, tmp_path):
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    return float(np.abs(_predict(loaded, x) - _predict(model, x)).max())


def float_tflite_rel_diff(model, x):
    """Largest |float TFLite - Keras| relative to the largest |Keras| output."""
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.runners.litert import LiteRTRunner

    data = convert(model, "none")
    runner = LiteRTRunner(data, read_tflite(data), "reference")
    ours, theirs = _stacked(runner.run_all_float(x)), _predict(model, x)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-12))


def layer_config_mismatches(model):
    """Names of the layers (nested models included) whose from_config(get_config()) gives
    another config: a layer that drops an argument would lose it in every saved model."""
    bad = []
    for layer in model.layers:
        config = layer.get_config()
        if type(layer).from_config(config).get_config() != config:
            bad.append(layer.name)
        if isinstance(layer, keras.Model):
            bad.extend(f"{layer.name}/{name}" for name in layer_config_mismatches(layer))
    return tuple(bad)


def batch_rel_diff(model, x):
    """Largest |one sample at a time - whole batch| relative to the largest output: a layer that
    mixes samples, or hard-codes a batch size, shows here."""
    whole = _predict(model, x, batch_size=len(x))
    single = _predict(model, x, batch_size=1)
    return float(np.abs(whole - single).max() / max(np.abs(whole).max(), 1e-12))


def _output_shape(outputs):
    """The output's shape, or a tuple of the outputs' shapes."""
    if isinstance(outputs, (list, tuple)):
        return tuple(tuple(o.shape) for o in outputs)
    return outputs.shape


def run_graph_checks(model, tmp_path, x=None):
    """The checks about the Keras graph, for every model."""
    x = samples_for(model) if x is None else x
    return GraphCheck(
        output_shape=_output_shape(model.predict(x, verbose=0)),
        config_max_diff=config_round_trip(model, x),
        keras_file_max_diff=keras_file_round_trip(model, x, tmp_path),
        float_tflite_rel_diff=float_tflite_rel_diff(model, x),
        functional=bool(getattr(model, "_is_graph_network", False)),
        layer_config_mismatches=layer_config_mismatches(model),
        batch_rel_diff=batch_rel_diff(model, x),
    )


def run_board_checks(model, target, x=None, calibration=None):
    """int8 conversion for board ``target`` and edgezoo's verification on it:
    ``{"target", "report", "runtimes", "tflite", "parsed"}``."""
    x = samples_for(model) if x is None else x
    profile = get_profile(target)
    compressed, parsed = convert_model(model, "int8", profile,
                                       x if calibration is None else calibration)
    report = compressed.report
    # uniform noise into an untrained model: near-tied logits, so no top-1 gates on it (the
    # per-op gate, arena and budget still run); a model's agreement is judged on its data
    runtimes = verify(compressed.tflite, parsed, profile, x, real_data=False)
    report.update({"fits": runtimes["fits"], "arena_bytes": runtimes["arena_bytes"]})
    return {"target": target, "report": report, "runtimes": runtimes,
            "tflite": compressed.tflite, "parsed": parsed}


def run_model_checks(model, tmp_path, x=None, target=None, calibration=None):
    """Graph checks on ``model``, and board checks where ``target`` is given; returns the
    measurements for the caller to assert (``assert_model_checks``)."""
    x = samples_for(model) if x is None else x
    graph = run_graph_checks(model, tmp_path, x)
    board = {} if target is None else run_board_checks(model, target, x, calibration)
    return ModelCheck(**dataclasses.asdict(graph), **board)


def assert_graph_checks(check, expected_output_shape):
    """The graph tolerances every family meets."""
    assert check.output_shape == tuple(expected_output_shape)
    assert check.functional, "not a functional graph: TFMOT and the rewrites cannot see its layers"
    assert check.layer_config_mismatches == ()
    assert check.config_max_diff == 0.0
    assert check.keras_file_max_diff == 0.0
    assert check.batch_rel_diff <= BATCH_RTOL
    assert check.float_tflite_rel_diff <= FLOAT_TFLITE_RTOL


def assert_board_checks(check):
    """The board gates: no GELU left, TFLite Micro matches the reference kernels op by op, the
    model fits the target, and the C header's arena runs."""
    assert check.target is not None and check.report is not None, "no board checks were run"
    assert "GELU" not in check.report["ops"]
    checks = check.runtimes["checks"]
    assert checks["micro_vs_reference_per_op"]["passed"], checks["micro_vs_reference_per_op"]
    assert check.report["fits"] is True and check.runtimes["passed"], check.runtimes["failures"]
    assert_header_arena_runs(check)


def assert_model_checks(check, expected_output_shape):
    """Graph checks always; board checks where the check has a target."""
    assert_graph_checks(check, expected_output_shape)
    if check.target is not None:
        assert_board_checks(check)


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


__all__ = ["BATCH_RTOL", "FLOAT_TFLITE_RTOL", "GraphCheck", "ModelCheck", "assert_board_checks",
           "assert_graph_checks", "assert_model_checks", "run_board_checks", "run_graph_checks",
           "run_model_checks", "samples_for", "top1"]
