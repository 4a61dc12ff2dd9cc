import json

import numpy as np
import pytest

from edgezoo.convert import convert_model, convert_pipeline, prepare_conversion
from edgezoo.converters.quantize import convert
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge.micro_ops import micro_op_table
from edgezoo.edge.runners.micro import check_micro_ops
from edgezoo.edge.profiles import get_profile
from edgezoo.edge.verification import verify
from edgezoo.base.errors import DataError, RecipeError, UnsupportedOpsError, UnsupportedQuantizationError
from edgezoo.zoo import create_model


def test_int8_from_static_batch1_signature(digits16):
    model = create_model("vit_micro")
    compressed, parsed = convert_model(model, "int8", get_profile("nrf52840"), digits16.train.x[:64])
    data, report = compressed.tflite, compressed.report
    report.update(verify(data, parsed, get_profile("nrf52840"), digits16.test.x[:8]))
    (inp,), (out,) = parsed.inputs, parsed.outputs
    assert (inp.dtype, out.dtype) == ("INT8", "INT8")
    assert inp.shape == (1, 16, 16, 1) and out.shape == (1, 10)
    assert not {"REDUCE_PROD", "SHAPE", "GELU", "FULLY_CONNECTED"} & set(parsed.op_names)
    assert report["recipe"]["rewrites"] == ["gelu", "dense_as_conv1x1"]
    assert report["gelu_rewrite"]["max_abs_deviation"] <= 2.8e-4
    lo, hi = report["gelu_rewrite"]["calibration_range"]
    assert lo < 0 < hi
    assert report["fits"] and report["arena_bytes"] > 10_000
    assert report["tflite_bytes"] == len(data)


@pytest.mark.slow  # about 20 s; the static batch-1 conversion it motivates is in the default suite
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
    model, profile, data, _ = prepare_conversion("vit_micro", "float16", "rpi4")
    assert data is None  # float16 needs no calibration data
    compressed, parsed = convert_model(model, "float16", profile, None)
    assert "DEQUANTIZE" in parsed.op_names and parsed.inputs[0].dtype == "FLOAT32"
    checked = verify(compressed.tflite, parsed, profile, np.zeros((2, 16, 16, 1), np.float32))
    assert "arena_bytes" not in checked and checked["fits"]


def test_calibration_file_of_wrong_shape(tmp_path):
    path = tmp_path / "calib.npy"
    np.save(path, np.zeros((10, 8, 8, 1), np.float32))
    with pytest.raises(DataError, match=r"has shape \(10, 8, 8, 1\); the model takes \(N, 16, 16, 1\)"):
        prepare_conversion("vit_micro", "int8", "nrf52840", str(path))
    with pytest.raises(DataError, match="no such data file"):
        prepare_conversion("vit_micro", "int8", "nrf52840", str(tmp_path / "nope.npy"))
    with pytest.raises(DataError, match="neither a data set"):
        prepare_conversion("vit_micro", "int8", "nrf52840", "cifar10")


def test_pipeline_writes_all_outputs_and_nothing_else(tmp_path, digits16):
    calib = tmp_path / "calib.npy"
    np.save(calib, digits16.train.x[:32])
    out = tmp_path / "out"
    report = convert_pipeline("vit_micro", out, "int8", "nrf52840", str(calib))
    assert sorted(p.name for p in out.iterdir()) == ["model.tflite", "model_data.cc", "model_data.h",
                                                     "report.json", "report.md", "report.png",
                                                     "timings.json"]
    assert "wall_time_s" not in report and "wall_time_s" in json.loads((out / "timings.json").read_text())
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


def test_int8_without_calibration_data_stops_before_any_work(tmp_path):
    with pytest.raises(RecipeError, match="--quantize int8 needs calibration data. int8 quantization "
                                          "sets every tensor's range from representative data"):
        convert_pipeline("vit_micro", tmp_path / "o", "int8", "nrf52840")
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def ic_h5(mlperf_dir):
    return str(mlperf_dir / "pretrainedResnet.h5")


def test_a_model_file_without_input_range_and_a_named_data_set(ic_h5):
    with pytest.raises(DataError, match="records no input range.*pass --input-range LOW,HIGH"):
        prepare_conversion(ic_h5, "int8", "stm32l4r5", "natural_patches")


@pytest.mark.parametrize("input_range, high", [("0,255", 255.0), ("0,1", 1.0)])
def test_data_is_brought_into_the_models_range(ic_h5, input_range, high):
    """The IC model takes 0-255; a 0-1 model gets the same patches rescaled to 0-1."""
    _, _, data, contract = prepare_conversion(ic_h5, "int8", "stm32l4r5", "natural_patches",
                                              input_range=input_range)
    assert (contract.low, contract.high, contract.origin) == (0.0, high, "--input-range")
    for split in (data.train, data.val, data.test):
        assert split.x.min() >= 0.0 and split.x.max() <= high and split.x.max() > 0.7 * high
    if high == 1.0:
        assert "rescaled linearly from [0, 255] to [0, 1]" in data.source


def test_digits_on_the_ic_model_is_flagged_uninformative(ic_h5, tmp_path):
    """The CIFAR-10 IC model calls digits (rescaled to its 0-255) class 2 or 3 (74 % / 25 %, measured):
    agreement on digits says nothing about it."""
    report = convert_pipeline(ic_h5, tmp_path / "o", "int8", "stm32l4r5", "digits",
                              input_range="0,255", recipe=None)
    agreement = report["agreement"]
    assert agreement["informative"] is False
    assert "falls on only 2 of its 10 classes" in " ".join(agreement["reasons"])
    assert report["checks"]["agreement_informative"]["passed"] is False and not report["passed"]
    assert report["data"]["test"] == 360 and "grey repeated to 3 channels" in report["data"]["source"]
    assert "**uninformative**" in (tmp_path / "o" / "report.md").read_text()
