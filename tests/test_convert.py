import json

import numpy as np
import pytest

from edgezoo.convert import convert_model, convert_pipeline, prepare_conversion
from edgezoo.converters.quantize import convert
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge.micro_ops import micro_op_table
from edgezoo.edge.runners.micro import check_micro_ops
from edgezoo.edge.profiles import get_profile
from edgezoo.errors import DataError, UnsupportedOpsError, UnsupportedQuantizationError
from edgezoo.zoo import create_model


def test_int8_from_static_batch1_signature(digits16):
    model = create_model("vit_micro")
    data, parsed, report = convert_model(model, "int8", get_profile("nrf52840"), digits16.train.x[:64])
    (inp,), (out,) = parsed.inputs, parsed.outputs
    assert (inp.dtype, out.dtype) == ("INT8", "INT8")
    assert inp.shape == (1, 16, 16, 1) and out.shape == (1, 10)
    assert not {"REDUCE_PROD", "SHAPE", "GELU", "FULLY_CONNECTED"} & set(parsed.op_names)
    assert report["recipe"]["rewrites"] == ["gelu", "dense_as_conv1x1"]
    assert report["gelu_rewrite"]["max_abs_deviation"] <= 5e-4
    lo, hi = report["gelu_rewrite"]["calibration_range"]
    assert lo < 0 < hi
    assert report["fits"] and report["arena_bytes"] > 10_000
    assert report["tflite_bytes"] == len(data)


def test_dynamic_batch_brings_shape_arithmetic():
    """Why we trace at batch 1: the plain Keras path keeps the batch dynamic."""
    import tensorflow as tf

    model = create_model("vit_micro")
    dynamic = read_tflite(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    static = read_tflite(convert(model, "none"))
    assert {"REDUCE_PROD", "SHAPE", "PACK"} <= set(dynamic.op_names) - set(static.op_names)
    assert dynamic.inputs[0].shape_signature[0] == -1 and -1 not in static.inputs[0].shape_signature
    with pytest.raises(UnsupportedOpsError) as err:  # refused before TFLite Micro sees it
        check_micro_ops(dynamic)
    reasons = {p["op"]: p["reason"] for p in err.value.problems}
    assert reasons["REDUCE_PROD"] == "TFLite Micro has no REDUCE_PROD kernel"
    assert "REDUCE_PROD" not in micro_op_table()


def test_run_time_dimensions_are_refused_for_micro():
    """A sequence length fixed only at run time cannot get a TFLite Micro arena."""
    import dataclasses

    model = read_tflite(convert(create_model("vit_micro"), "none"))
    variable = dataclasses.replace(model.inputs[0], shape_signature=(1, -1, 16, 1))
    with pytest.raises(UnsupportedOpsError, match=r"input shape \(1, -1, 16, 1\) has a run-time"):
        check_micro_ops(dataclasses.replace(model, inputs=(variable,)))


@pytest.mark.parametrize("mode", ["float16", "dynamic"])
def test_micro_target_refuses_float16_and_dynamic_before_work(mode):
    with pytest.raises(UnsupportedQuantizationError, match=f"--quantize {mode} cannot run on a microcontroller"):
        prepare_conversion("vit_b16", mode, "nrf52840")


def test_unknown_quantization():
    with pytest.raises(UnsupportedQuantizationError, match="unknown quantization 'int4'"):
        prepare_conversion("vit_micro", "int4", None)


def test_float16_for_a_linux_board():
    model, profile, samples = prepare_conversion("vit_micro", "float16", "rpi4")
    data, parsed, report = convert_model(model, "float16", profile, samples)
    assert "DEQUANTIZE" in parsed.op_names and parsed.inputs[0].dtype == "FLOAT32"
    assert "arena_bytes" not in report and report["fits"]


def test_calibration_file_of_wrong_shape(tmp_path):
    path = tmp_path / "calib.npy"
    np.save(path, np.zeros((10, 8, 8, 1), np.float32))
    with pytest.raises(DataError, match=r"has shape \(10, 8, 8, 1\); the model takes \(N, 16, 16, 1\)"):
        prepare_conversion("vit_micro", "int8", "nrf52840", str(path))
    with pytest.raises(DataError, match="neither a data set"):
        prepare_conversion("vit_micro", "int8", "nrf52840", str(tmp_path / "nope.npy"))


def test_pipeline_writes_all_outputs_and_nothing_else(tmp_path, digits16):
    calib = tmp_path / "calib.npy"
    np.save(calib, digits16.train.x[:32])
    out = tmp_path / "out"
    report = convert_pipeline("vit_micro", out, "int8", "nrf52840", str(calib))
    assert sorted(p.name for p in out.iterdir()) == ["model.tflite", "model_data.cc", "model_data.h",
                                                     "report.json", "report.md"]
    assert f"{report['tflite_bytes']};" in (out / "model_data.cc").read_text()
    saved = json.loads((out / "report.json").read_text())
    assert saved["tflite_bytes"] == (out / "model.tflite").stat().st_size == report["tflite_bytes"]
    assert saved["provenance"]["packages"]["tflite-micro"].startswith("0.dev")
    assert "fits `nrf52840`" in (out / "report.md").read_text()


def test_failed_conversion_leaves_no_files(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DataError):
        convert_pipeline("vit_micro", out, "int8", "nrf52840", str(tmp_path / "missing.npy"))
    assert not out.exists() or not any(out.iterdir())
