"""LUT weight compression of a clustered int8 model: smaller, lossless in TFLite Micro, deterministic."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.converters.clustering import cluster
from edgezoo.converters.finetune import FinetuneData, finetune
from edgezoo.converters.micro_compression import compress_tflite, decompression_bytes
from edgezoo.converters.quantize import convert
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.converters.tflite_weights import constant_weights
from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops
from edgezoo.base.errors import ModelFileError, RecipeError


def small_cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(10, name="fc")(x)
    return keras.Model(inputs, outputs, name="lut_cnn")


@pytest.fixture(scope="module")
def models(digits8):
    """(plain int8 bytes, clustered K=8 int8 bytes)."""
    model = small_cnn()
    finetune(model, FinetuneData(digits8.train.x, digits8.train.y), epochs=10, learning_rate=3e-3)
    clustered, _ = cluster(model, FinetuneData(digits8.train.x, digits8.train.y), clusters=8,
                           epochs=2, learning_rate=1e-3)
    calib = digits8.train.x[:100]
    return convert(model, "int8", calib, micro=True), convert(clustered, "int8", calib, micro=True)


@pytest.fixture(scope="module")
def compressed(models):
    return compress_tflite(models[1])


def test_compressed_is_smaller_and_reports_each_tensor(models, compressed):
    data, info = compressed
    original = models[1]
    assert len(data) < 0.75 * len(original)
    assert info["original_bytes"] == len(original) and info["compressed_bytes"] == len(data)
    by_layer = {t["layer"]: t for t in info["tensors"]}
    # conv1 (9 weights per channel, 16 tables) would grow: it stays as it is.
    assert [(t["op"], t["layer"]) for t in info["tensors"]][:2] == [("CONV_2D", "conv2"),
                                                                     ("CONV_2D", "conv3")]
    assert [t["op"] for t in info["tensors"]][2:] == ["FULLY_CONNECTED"]
    assert [s["layer"] for s in info["skipped"]] == ["conv1"]
    assert "would not be smaller" in info["skipped"][0]["reason"]
    for layer, weight in by_layer.items():
        assert weight["bits"] == 3 and weight["unique"] <= 8
        assert weight["encoded_bytes"] == -(-np.prod(weight["shape"]) * 3 // 8)
    # the DECODE outputs alive at once: the largest decoded weight, conv2/conv3's 32x3x3x32 int8
    assert info["decompression_bytes"] == 32 * 3 * 3 * 32
    assert info["decoded_bytes_total"] == 32 * 3 * 3 * 16 + 32 * 3 * 3 * 32 + 10 * 32
    assert info["decode_ops"] == 3
    assert decompression_bytes(data) == (info["decompression_bytes"], info["decoded_bytes_total"])
    # the weights of DECODE'd layers are no longer stored as int8 in the file
    assert {w.layer for w in constant_weights(data)} == {"conv1"}


def test_compressed_model_is_bit_identical_in_tflite_micro(models, compressed, digits8):
    original, (data, info) = models[1], compressed
    parsed = read_tflite(data)
    assert [op.op for op in parsed.operators].count("CUSTOM:TFLM_DECODE") == 3
    check_micro_ops(parsed)  # TFLite Micro registers DECODE, so the static check accepts it
    plain = MicroRunner(original, read_tflite(original))
    lut = MicroRunner(data, parsed)
    x = digits8.test.x[:64]
    expected, got = plain.run(x), lut.run(x)
    assert got.dtype == np.int8 and np.array_equal(got, expected)
    assert (got.argmax(1) == digits8.test.y[:64]).mean() >= 0.7  # and it is a working classifier
    # DECODE outputs live in the arena: it grows by at most the decoded bytes alive at once
    assert lut.arena_bytes > plain.arena_bytes
    assert lut.arena_bytes - plain.arena_bytes <= info["decompression_bytes"] + 1024


def test_compressed_model_passes_the_loader(models, compressed, tmp_path):
    from edgezoo.edge import load_tflite

    path = tmp_path / "lut.tflite"
    path.write_bytes(compressed[0])
    data, parsed = load_tflite(path)
    assert data == compressed[0]
    assert len(parsed.operators) == len(read_tflite(models[1]).operators) + 3


def test_compression_is_deterministic(models, compressed):
    again, info = compress_tflite(models[1])
    assert again == compressed[0] and info == compressed[1]


def test_max_unique_selects_tensors(models):
    data, info = compress_tflite(models[1], max_unique=128)  # any int8 channel may qualify
    assert [t["shape"] for t in info["tensors"]] == [[32, 3, 3, 16], [32, 3, 3, 32], [10, 32]]
    with pytest.raises(RecipeError,
                       match="no int8 weight tensor would shrink .* at most 4 distinct.*conv2: 8 distinct"):
        compress_tflite(models[1], max_unique=4)


def test_unclustered_model_is_refused(models):
    with pytest.raises(RecipeError, match="cluster the model first"):
        compress_tflite(models[0])


def test_compressing_twice_is_refused(compressed):
    with pytest.raises(RecipeError, match="already LUT-compressed"):
        compress_tflite(compressed[0])


@pytest.mark.parametrize("bad", [0, 129, 2.0, True])
def test_bad_max_unique_is_refused(models, bad):
    with pytest.raises(RecipeError, match="max_unique=.*integer from 1 to 128"):
        compress_tflite(models[1], max_unique=bad)


def test_not_a_tflite_is_refused():
    with pytest.raises(ModelFileError):
        compress_tflite(b"not a model at all, just some bytes")


def _arena(data):
    return MicroRunner(data, read_tflite(data)).measure_arena()


def test_lut_compression_is_kept_only_where_the_decoded_weights_fit_the_ram(models, compressed):
    """The board's RAM between the plain and the all-compressed arena: the layer with the most
    decoded bytes goes back to plain int8 and the rest stay compressed; below the plain arena
    nothing fits and the recipe is refused with the numbers (negative control)."""
    import dataclasses

    from edgezoo.converters.compress import CompressedModel
    from edgezoo.edge.profiles import get_profile
    from edgezoo.lut_fit import fit_lut_to_board

    plain, (data, info) = models[1], compressed
    plain_arena, full_arena = _arena(plain), _arena(data)
    assert full_arena > plain_arena  # TFLite Micro decodes into its arena
    board = dataclasses.replace(get_profile("nrf52840"), ram_margin_bytes=0,
                                ram_bytes=full_arena - 1)
    result = CompressedModel(None, data, {"steps": {"micro_compression": info}}, plain)
    fit_lut_to_board(result, board)
    fitted = result.report["steps"]["micro_compression"]
    largest = max(info["tensors"], key=lambda t: t["decoded_bytes"])
    assert fitted["ram_fit"]["left_uncompressed"] == [largest["tensor"]]
    assert {t["tensor"] for t in fitted["tensors"]} == \
        {t["tensor"] for t in info["tensors"]} - {largest["tensor"]}
    assert _arena(result.tflite) == fitted["ram_fit"]["arena_bytes"] <= board.ram_bytes
    assert len(plain) > len(result.tflite) > len(data)
    for t in fitted["tensors"]:  # each kept layer's trade, in the report
        assert t["flash_saved_bytes"] > 0 and t["decoded_bytes"] == t["original_bytes"]

    tight = dataclasses.replace(board, ram_bytes=plain_arena - 1)
    result = CompressedModel(None, data, {"steps": {"micro_compression": info}}, plain)
    with pytest.raises(RecipeError, match=rf"no choice of compressed layers fits nrf52840\. "
                                          rf"every clustered layer compressed: .*arena "
                                          rf"{full_arena:,} B.*0 layer\(s\) compressed: .*arena "
                                          rf"{plain_arena:,} B"):
        fit_lut_to_board(result, tight)
