"""Shared checks every model family runs: build, forward, config and .keras round trips,
float TFLite agreement, int8 conversion for a microcontroller, and the three-way runtime
comparison (TFLite Micro vs LiteRT reference kernels vs default LiteRT)."""
import dataclasses

import numpy as np
import tf_keras as keras

from edgezoo.convert import convert_model
from edgezoo.converters.quantize import convert
from edgezoo.edge.compare import compare_runtimes, top1
from edgezoo.edge.profiles import get_profile

FLOAT_TFLITE_RTOL = 1e-5  # float TFLite vs Keras, relative to the largest output magnitude
MICRO_VS_REFERENCE_LSB = 1  # TFLite Micro vs LiteRT BUILTIN_REF, every element
DEFAULT_VS_MICRO_TOP1 = 0.99  # XNNPACK rounds differently: compare top-1 only


@dataclasses.dataclass
class ModelCheck:
    """What a family's test asserts on; every field was measured, none is assumed."""

    output_shape: tuple
    config_max_diff: float
    keras_file_max_diff: float
    float_tflite_rel_diff: float
    report: dict
    runtimes: dict


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
    report_model = model
    tflite, parsed, report = convert_model(report_model, "int8", get_profile(target),
                                           x if calibration is None else calibration)
    runtimes, _ = compare_runtimes(tflite, parsed, x, float_outputs=out)
    return ModelCheck(
        output_shape=out.shape,
        config_max_diff=config_round_trip(model, x),
        keras_file_max_diff=keras_file_round_trip(model, x, tmp_path),
        float_tflite_rel_diff=float_tflite_rel_diff(model, x),
        report=report,
        runtimes=runtimes,
    )


def assert_model_checks(check, expected_output_shape):
    """The tolerances every family meets."""
    assert check.output_shape == tuple(expected_output_shape)
    assert check.config_max_diff == 0.0
    assert check.keras_file_max_diff == 0.0
    assert check.float_tflite_rel_diff <= FLOAT_TFLITE_RTOL
    assert "GELU" not in check.report["ops"]
    assert check.runtimes["micro_vs_reference_max_lsb"] <= MICRO_VS_REFERENCE_LSB
    assert check.runtimes["default_vs_micro_top1"] >= DEFAULT_VS_MICRO_TOP1
    assert check.report["fits"] is True


__all__ = ["ModelCheck", "assert_model_checks", "run_model_checks", "samples_for", "top1"]
