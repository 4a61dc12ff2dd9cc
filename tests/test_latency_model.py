"""MACs from tensor shapes, and the per-core latency estimate against published MLPerf Tiny figures."""
import json

import numpy as np
import pytest

from edgezoo.edge.latency_model import (core_costs, cost_table, estimate_latency, fit_mac_scale,
                                        op_group)
from edgezoo.edge.loader import load_tflite
from edgezoo.edge.macs import model_work, total_macs
from edgezoo.edge.profiles import ProfileError, load_profiles

# MLPerf Tiny v0.5, closed division, reference submission: NUCLEO-L4R5ZI (Cortex-M4, 120 MHz),
# TFLite Micro reference kernels (mlcommons/tiny_results_v0.5, results/Nucleo-L4R5ZI/*/performance).
PUBLISHED_MS = {"kws": 181.92, "ic": 704.26, "vww": 600.5, "ad": 10.05}
FILES = {"kws": "kws_ref_model.tflite", "ic": "pretrainedResnet_quant.tflite"}


def _convert(model, shape, seed=0):
    from edgezoo.converters.quantize import convert

    calibration = np.random.default_rng(seed).random((16, *shape), np.float32)
    return load_tflite(convert(model, "int8", calibration))


def _work_by_op(data, parsed):
    work = {}
    for w in model_work(parsed, data):
        work.setdefault(w.op, []).append(w)
    return work


@pytest.fixture(scope="module")
def small_cnn():
    """Conv2D, DepthwiseConv2D, pools, ADD, MEAN and Dense with known shapes."""
    import tf_keras as keras

    inp = keras.Input((12, 10, 3))
    c = keras.layers.Conv2D(5, (3, 2), name="conv")(inp)                              # (10, 9, 5)
    d = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(c)             # (8, 7, 10)
    s = keras.layers.Conv2D(10, 1, strides=2, padding="same", name="pw")(d)           # (4, 4, 10)
    a = keras.layers.AveragePooling2D(2, name="avg")(s)                               # (2, 2, 10)
    m = keras.layers.MaxPooling2D(3, strides=2, name="max")(d)                        # (3, 3, 10)
    t = keras.layers.Add(name="add")([keras.layers.Conv2D(10, 1, name="pw2")(m), m])  # (3, 3, 10)
    g = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(t),
                                    keras.layers.Flatten()(a)])                       # (50,)
    out = keras.layers.Dense(7, name="fc")(g)
    return _convert(keras.Model(inp, out), (12, 10, 3))


def test_conv_and_depthwise_macs_are_exact(small_cnn):
    work = _work_by_op(*small_cnn)
    convs = sorted(w.macs for w in work["CONV_2D"])
    # conv: out 10x9x5, kernel 3x2 over 3 channels; pw: 4x4x10 outputs x 10 inputs; pw2: 3x3x10 x 10
    assert convs == sorted([10 * 9 * 5 * 3 * 2 * 3, 4 * 4 * 10 * 10, 3 * 3 * 10 * 10])
    (dw,) = work["DEPTHWISE_CONV_2D"]
    assert dw.macs == 8 * 7 * 10 * 3 * 3 and dw.elements == 8 * 7 * 10
    (fc,) = work["FULLY_CONNECTED"]
    assert fc.macs == 50 * 7 and fc.elements == 7


def test_element_work_of_pools_adds_and_reductions(small_cnn):
    work = _work_by_op(*small_cnn)
    (avg,) = work["AVERAGE_POOL_2D"]
    (mx,) = work["MAX_POOL_2D"]
    assert avg.elements == 2 * 2 * 10 * (2 * 2)  # outputs x window
    assert mx.elements == 3 * 3 * 10 * (3 * 3)   # overlapping 3x3 windows, stride 2: not the input count
    assert work["ADD"][0].elements == 3 * 3 * 10
    assert work["MEAN"][0].elements == 3 * 3 * 10  # a reduction reads every input element
    assert all(w.macs == 0 for op in ("ADD", "MEAN", "MAX_POOL_2D") for w in work[op])
    data, parsed = small_cnn
    assert total_macs(parsed) == 8100 + 1600 + 900 + 5040 + 350


def test_transpose_conv_and_batch_matmul_macs():
    import tensorflow as tf
    import tf_keras as keras

    inp = keras.Input((4, 4, 3))
    up = keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same", name="up")(inp)  # (8, 8, 5)
    seq = keras.layers.Reshape((16, 20))(up)
    q = keras.layers.Dense(6, name="q")(seq)                                          # (16, 6)
    k = keras.layers.Dense(6, name="k")(seq)
    scores = keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_b=True))([q, k])  # (16, 16)
    data, parsed = _convert(keras.Model(inp, scores), (4, 4, 3))
    work = _work_by_op(data, parsed)
    (tc,) = work["TRANSPOSE_CONV"]
    assert tc.macs == 4 * 4 * 3 * (3 * 3 * 5)  # every input element through a 3x3x5 filter
    (bmm,) = work["BATCH_MATMUL"]
    assert bmm.macs == 16 * 16 * 6 and bmm.elements == 16 * 16


@pytest.fixture(scope="module")
def mlperf(mlperf_dir):
    return {key: load_tflite(mlperf_dir / name) for key, name in FILES.items()}


def test_mlperf_macs(mlperf):
    # DS-CNN: 10x4 conv to 25x5x64, four 3x3 depthwise + 64x64 pointwise blocks, 64->12 dense.
    assert total_macs(mlperf["kws"][1]) == 25 * 5 * 64 * 40 + 4 * (25 * 5 * 64 * (9 + 64)) + 64 * 12
    assert total_macs(mlperf["ic"][1]) == 12_501_632


@pytest.mark.parametrize("key", ["kws", "ic"])
def test_cortex_m4_estimate_matches_published_latency(mlperf, key):
    data, parsed = mlperf[key]
    estimate = estimate_latency(parsed, "stm32l4r5", data)
    assert estimate.core == "cortex-m4" and estimate.clock_mhz == 120
    assert abs(estimate.ms / PUBLISHED_MS[key] - 1) < 0.25, (key, estimate.ms)
    assert estimate.as_dict()["basis"].startswith("estimate")
    assert estimate.cycles == pytest.approx(sum(op["cycles"] for op in estimate.ops))


def test_constants_are_per_core_and_shared_by_models(mlperf):
    a = estimate_latency(mlperf["kws"][1], "stm32l4r5", mlperf["kws"][0])
    b = estimate_latency(mlperf["ic"][1], "stm32l4r5", mlperf["ic"][0])
    assert a.core == b.core and core_costs(a.core) is core_costs(b.core)
    table = cost_table()
    assert set(table["cores"]) == {"cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m0plus",
                                   "xtensa-lx7", "cortex-a72"}
    allowed = {"source", "mac_scale", "mac_ratios", "mac_ratios_note", "cycles_per_output",
               "cycles_per_output_note", "cycles_per_element", "cycles_per_element_note", "cycles_per_op",
               "cycles_per_op_note", "scale_from", "factors"}
    for core, entry in table["cores"].items():
        assert set(entry) <= allowed, core  # nothing keyed by a model
        assert entry["source"]
    # Every MAC op a CONV_2D-relative ratio; one fitted number.
    m4 = table["cores"]["cortex-m4"]
    assert m4["mac_ratios"]["CONV_2D"] == 1.0
    assert core_costs("cortex-m4").cycles_per_mac["DEPTHWISE_CONV_2D"] == pytest.approx(3 * m4["mac_scale"])


def test_the_m4_constant_is_the_documented_fit(mlperf):
    points = [(mlperf[k][1], mlperf[k][0], 120, PUBLISHED_MS[k]) for k in ("kws", "ic")]
    assert fit_mac_scale(points) == pytest.approx(cost_table()["cores"]["cortex-m4"]["mac_scale"], rel=0.01)


def _vww():
    """MobileNetV1 0.25 at 96x96x3, 2 classes: MLPerf Tiny's VWW architecture."""
    import tf_keras as keras

    inp = keras.Input((96, 96, 3))
    x = keras.layers.ReLU()(keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp))
    filters = 8
    for stride, grow in [(1, 2), (2, 2), (1, 1), (2, 2), (1, 1), (2, 2), (1, 1), (1, 1), (1, 1),
                         (1, 1), (1, 1), (2, 2), (1, 1)]:
        x = keras.layers.ReLU()(keras.layers.DepthwiseConv2D(3, strides=stride, padding="same")(x))
        filters *= grow
        x = keras.layers.ReLU()(keras.layers.Conv2D(filters, 1)(x))
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(x.shape[1:3])(x))
    return keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)), (96, 96, 3)


def _ad():
    """MLPerf Tiny's anomaly-detection autoencoder: 640-128x4-8-128x4-640 dense layers."""
    import tf_keras as keras

    inp = keras.Input((640,))
    h = inp
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        h = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Dense(units)(h)))
    return keras.Model(inp, keras.layers.Dense(640)(h)), (640,)


@pytest.mark.parametrize("key, build, macs", [("ad", _ad, 264_192), ("vww", _vww, 7_489_664)])
def test_held_out_mlperf_models(key, build, macs):
    """Not used in calibration: VWW and AD, rebuilt from their architectures, land within 25 %."""
    data, parsed = _convert(*build())
    estimate = estimate_latency(parsed, "stm32l4r5", data)
    assert estimate.macs == macs
    assert abs(estimate.ms / PUBLISHED_MS[key] - 1) < 0.25, (key, estimate.ms)


def test_other_cores_scale_by_their_stated_factors(mlperf):
    data, parsed = mlperf["kws"]
    profiles = load_profiles()
    m4 = estimate_latency(parsed, profiles["stm32l4r5"], data)
    table = cost_table()["cores"]
    for name, profile in profiles.items():
        estimate = estimate_latency(parsed, profile, data)
        entry = table[profile.core]
        if "factors" in entry and len(set(entry["factors"].values())) == 1:
            factor = entry["factors"]["mac"]  # one factor for everything: the cycles scale with it
            assert estimate.cycles == pytest.approx(m4.cycles * factor, rel=1e-9), name
        assert estimate.ms == pytest.approx(estimate.cycles / (profile.clock_mhz * 1e3))
    # cortex-m7 at 480 MHz: 0.679 of the M4's cycles at 4x the clock.
    h7 = estimate_latency(parsed, "stm32h743", data)
    assert h7.ms == pytest.approx(m4.ms * 0.679 * 120 / 480, rel=1e-6)


def test_op_groups_and_unknown_cores(tmp_path):
    assert op_group("ADD") == "binary" and op_group("SOFTMAX") == "transcendental"
    assert op_group("RESHAPE") == "data_movement" and op_group("SOMETHING_NEW") == "other"
    with pytest.raises(ProfileError, match="no latency constants for core 'riscv'; known cores: cortex-a72"):
        core_costs("riscv")


def test_device_test_report_has_macs_and_a_labelled_estimate(mlperf_dir, tmp_path):
    from edgezoo.device_test import test_tflite as run_device_test

    report = run_device_test(mlperf_dir / FILES["kws"], "stm32l4r5", samples=4)
    assert report["macs"] == 2_656_768
    assert report["timings"]["litert_ms"] > 0  # measured on this machine: a timing, not a result
    assert abs(report["latency_estimate"]["estimate_ms"] / PUBLISHED_MS["kws"] - 1) < 0.25
    assert report["latency_estimate"]["basis"].startswith("estimate:") and "not a measurement" in \
        report["latency_estimate"]["basis"]
    assert report["latency_estimate"]["core"] == "cortex-m4"
    json.dumps(report)  # stays JSON
    boards = tmp_path / "boards.json"
    boards.write_text(json.dumps({"riscv_board": dict(
        description="no constants", core="riscv", clock_mhz=100, flash_bytes=2**21, ram_bytes=2**19,
        flash_reserve_bytes=0, ram_margin_bytes=0, runtime="tflite-micro")}))
    report = run_device_test(mlperf_dir / FILES["kws"], "riscv_board", samples=2, profiles=boards)
    assert report["latency_estimate"]["estimate_ms"] is None  # dropped, and it says why
    assert report["latency_estimate"]["reason"].startswith(
        "core 'riscv' has no cycle model; known: cortex-a72, cortex-m0plus")
