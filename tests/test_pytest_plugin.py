"""The edgezoo pytest plugin: the edgezoo_device marker and the edge_check fixture."""
import json

import numpy as np
import pytest

pytest_plugins = ["pytester"]


@pytest.mark.edgezoo_device("nrf52840")
def test_kws_runs_on_the_nrf52840(edge_check, mlperf_dir):
    result = edge_check(mlperf_dir / "kws_ref_model.tflite")
    assert result["device"] == "nrf52840" and result["runtime"] == "tflite-micro"
    assert result["max_lsb"] <= 1 and result["samples"] == 32
    assert result["fits"] is True and result["arena_bytes"] == 24272  # recorded = bisected here
    assert result["thresholds"]["top1_agreement"] == 0.98  # the one path's default
    assert result["budget"]["flash"]["used_bytes"] == 53936 + 131072
    assert result["macs"] == 2_656_768 and result["latency_estimate_ms"] > 0


@pytest.fixture(scope="module")
def digits_model(digits16):
    """A small Keras classifier trained on 16x16 digits, and its int8 .tflite."""
    import tf_keras as keras

    from edgezoo.converters.quantize import convert

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(digits16.train.x, digits16.train.y, epochs=15, batch_size=32, verbose=0)
    return model, convert(model, "int8", digits16.train.x[:200])


@pytest.mark.edgezoo_device("stm32l4r5")
def test_int8_model_agrees_with_its_keras_model(edge_check, digits_model, digits16):
    model, tflite = digits_model
    x, y = digits16.test.x[:100], digits16.test.y[:100]
    result = edge_check(tflite, keras_model=model, x=x, labels=y, top1_agreement=0.95)
    assert result["top1_agreement"] >= 0.95 and result["samples"] == 100
    assert result["accuracy"] > 0.8 and result["max_lsb"] <= 1


@pytest.mark.edgezoo_device("rpi4")
def test_a_litert_board_compares_litert_kernels(edge_check, mlperf_dir):
    """rpi4 runs LiteRT: its default kernels drift a few LSB from the reference ones, within 8."""
    model = mlperf_dir / "pretrainedResnet_quant.tflite"
    result = edge_check(model, samples=32)
    assert result["runtime"] == "litert" and "max_lsb" not in result
    assert 1 < result["default_vs_reference_max_lsb"] <= 8
    assert result["fits"] is True and result["latency_estimate_ms"] < 10
    with pytest.raises(pytest.fail.Exception, match=r"differ from its reference kernels by up to \d+ LSB "
                                                    r"\(allowed: 1\) on 32 inputs"):
        edge_check(model, samples=32, max_lsb_default=1)


def test_a_users_test_file(pytester, mlperf_dir, tmp_path):
    """What a user writes, run by pytest with the plugin loaded from its entry point."""
    import tf_keras as keras

    from edgezoo.converters.quantize import convert

    inp = keras.Input((8,))
    h = keras.layers.Activation("exponential", name="expo")(keras.layers.Dense(8, name="fc")(inp))
    exp_model = tmp_path / "exp.tflite"
    exp_model.write_bytes(convert(keras.Model(inp, keras.layers.Dense(4)(h)), "int8",
                                  np.random.default_rng(0).random((50, 8), np.float32)))
    boards = tmp_path / "boards.json"
    boards.write_text(json.dumps({"tiny": dict(
        description="too small", core="cortex-m0plus", clock_mhz=48, flash_bytes=48 * 1024,
        ram_bytes=32 * 1024, flash_reserve_bytes=0, ram_margin_bytes=0, runtime="tflite-micro")}))
    kws = mlperf_dir / "kws_ref_model.tflite"
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.edgezoo_device("stm32l4r5")
        def test_kws(edge_check):
            assert edge_check({str(kws)!r})["max_lsb"] <= 1

        @pytest.mark.edgezoo_device("nrf52840")
        def test_exp(edge_check):
            edge_check({str(exp_model)!r})

        @pytest.mark.edgezoo_device("tiny", profiles={str(boards)!r})
        def test_too_big(edge_check):
            edge_check({str(kws)!r})

        def test_no_board(edge_check):
            edge_check({str(kws)!r})

        @pytest.mark.edgezoo_device("nrf52")
        def test_unknown_board(edge_check):
            edge_check({str(kws)!r})
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines([
        "*exp.tflite cannot run on nrf52840: TFLite Micro cannot run this model:*",
        "*EXP (INT8) from layer 'expo'*requires FLOAT32*",
        "*kws_ref_model.tflite on tiny:*",
        "*does not fit tiny's flash: 53,936 of 49,152 bytes*",
        "*edge_check needs a board: mark the test @pytest.mark.edgezoo_device('nrf52840') or pass device=*",
        "*unknown target 'nrf52'. Did you mean nrf52840?*",
    ])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.edgezoo_device("stm32l4r5")
def test_the_agreement_gate_fails_a_model_that_disagrees(edge_check, digits_model, digits16):
    """Negative control: the int8 model judged against a Keras model of other weights."""
    import tf_keras as keras

    model, tflite = digits_model
    other = keras.models.clone_model(model)  # freshly initialised: it predicts other classes
    x = digits16.test.x[:100]
    with pytest.raises(pytest.fail.Exception,
                       match=r"agrees with the float model on top-1 for \d+\.\d % of 100 samples "
                             r"\(needed: 98\.0 %\)"):
        edge_check(tflite, keras_model=other, x=x)
    # the same model passes once the gate is lowered below what it measured
    result = edge_check(tflite, keras_model=model, x=x, top1_agreement=0.5)
    assert result["thresholds"]["top1_agreement"] == 0.5


def test_the_marker_is_registered(pytester):
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.edgezoo_device(name, profiles=None):*"])
