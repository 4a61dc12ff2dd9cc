import re

import numpy as np
import pytest
import tf_keras as keras

from edgezoo.converters.rewrites import apply_micro_rewrites
from edgezoo.base.errors import InputShapeError
from edgezoo.zoo import create_model, model_info
from edgezoo.zoo.layers import MultiHeadSelfAttention
from edgezoo.zoo.perceiver.layers import CrossAttention, FourierPositionEncoding
from edgezoo.zoo.perceiver import perceiver, perceiver_io
from model_case import (
    FLOAT_TFLITE_RTOL,
    assert_model_checks,
    config_round_trip,
    float_tflite_rel_diff,
    keras_file_round_trip,
    run_model_checks,
    samples_for,
)

# HF transformers 5.23.0, PerceiverForImageClassificationFourier with the configuration of
# deepmind/vision-perceiver-fourier (latents 512 x 1024, d_model 261, 8 blocks of 6 self-attends,
# 1 cross head, 8 self heads, widening 1), random weights, built offline:
# sum(p.numel() for p in model.parameters()). The Perceiver IO paper's table: 48.4M.
HF_PERCEIVER_IO_FOURIER = 48_440_627
# The same HF model module by module.
HF_PARTS = {
    "latents": 524_288,  # perceiver.embeddings
    "cross_attend": 2_776_395,  # perceiver.encoder.cross_attention
    "self_attend": 6_301_696,  # perceiver.encoder.self_attends[0] (6 of them, shared by 8 blocks)
    "decoder_query": 1_024,  # decoder.decoder.output_position_encodings
    "decoder_cross_attend": 6_303_744,  # decoder.decoder.decoding_cross_attention
    "head": 1_025_000,  # decoder.decoder.final_layer
}
# The Perceiver (2103.03206) has no HF model: the same HF modules assembled as the paper's
# ImageNet model (latents + first cross-attend + shared cross-attend + one 6-block latent
# Transformer + HF PerceiverProjectionDecoder's mean-pool and linear layer). Paper: 44.9M.
PERCEIVER_FROM_HF_MODULES = 44_912_254
PAPER_PARAMS = {"perceiver": 44.9e6, "perceiver_io": 48.4e6}  # rounded to 0.1M in the papers


def _inbound(layer):
    return len(layer._inbound_nodes)


def _part(model, prefix):
    return sum(layer.count_params() for layer in model.layers if layer.name.startswith(prefix))


def _names(model, pattern):
    return sorted(layer.name for layer in model.layers if re.fullmatch(pattern, layer.name))


@pytest.fixture(scope="module")
def perceiver_imagenet():
    model = create_model("perceiver")
    yield model
    del model
    keras.backend.clear_session()


@pytest.fixture(scope="module")
def perceiver_io_imagenet():
    model = create_model("perceiver_io")
    yield model
    del model
    keras.backend.clear_session()


def test_perceiver_matches_paper_and_hf_modules(perceiver_imagenet):
    model = perceiver_imagenet
    assert model.count_params() == PERCEIVER_FROM_HF_MODULES
    assert abs(model.count_params() - PAPER_PARAMS["perceiver"]) < 0.05e6
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    assert model.get_layer("byte_array").output_shape == (None, 224 * 224, 3 + 258)
    assert model_info("perceiver")["arxiv"] == "2103.03206"
    assert _part(model, "latents") == HF_PARTS["latents"]
    assert _part(model, "cross0_") == _part(model, "cross1_") == HF_PARTS["cross_attend"]
    for j in range(6):
        assert _part(model, f"latent0_block{j}_") == HF_PARTS["self_attend"]
    assert _part(model, "head") == HF_PARTS["head"]


def test_perceiver_block_structure(perceiver_imagenet):
    """8 cross-attends with 2 weight sets (the first, then one shared by the other 7), and a
    6-block latent Transformer after each, all 8 using one weight set."""
    model = perceiver_imagenet
    assert len(_names(model, r"cross_attend\d+_attn_add")) == 8  # cross-attends applied
    assert _names(model, r"cross\d+_attn") == ["cross0_attn", "cross1_attn"]  # weight sets
    assert _inbound(model.get_layer("cross0_attn")) == 1
    assert _inbound(model.get_layer("cross1_attn")) == 7
    assert len(_names(model, r"tower\d+_block0_attn_add")) == 8  # latent Transformers applied
    attn = [layer for layer in model.layers if isinstance(layer, MultiHeadSelfAttention)]
    assert [layer.name for layer in attn] == [f"latent0_block{j}_attn" for j in range(6)]
    assert all(_inbound(layer) == 8 for layer in attn)  # 48 self-attends, 6 weight sets
    assert all(layer.num_heads == 8 for layer in attn)
    cross = model.get_layer("cross1_attn")
    assert cross.num_heads == 1 and cross.query.units == 261 and cross.out.units == 1024
    assert model.get_layer("latent0_block0_mlp_fc1").units == 1024  # widening 1


def test_perceiver_io_matches_hf_exactly(perceiver_io_imagenet):
    model = perceiver_io_imagenet
    assert model.count_params() == HF_PERCEIVER_IO_FOURIER
    assert abs(model.count_params() - PAPER_PARAMS["perceiver_io"]) < 0.05e6
    assert model.output_shape == (None, 1000)
    assert model_info("perceiver_io")["arxiv"] == "2107.14795"
    assert _part(model, "latents") == HF_PARTS["latents"]
    assert _part(model, "cross0_") == HF_PARTS["cross_attend"]
    assert _part(model, "latent0_block3_") == HF_PARTS["self_attend"]
    assert _part(model, "decoder_query") == HF_PARTS["decoder_query"]
    decoder = _part(model, "decoder_") - HF_PARTS["decoder_query"]
    assert decoder == HF_PARTS["decoder_cross_attend"]
    assert _part(model, "head") == HF_PARTS["head"]


def test_perceiver_io_block_structure(perceiver_io_imagenet):
    """One cross-attend, the 6-block latent Transformer applied 8 times with one weight set,
    one decoder cross-attend from a single learned query."""
    model = perceiver_io_imagenet
    assert _names(model, r"cross_attend\d+_attn_add") == ["cross_attend0_attn_add"]
    assert _names(model, r"cross\d+_attn") == ["cross0_attn"]
    attn = [layer for layer in model.layers if isinstance(layer, MultiHeadSelfAttention)]
    assert len(attn) == 6 and all(_inbound(layer) == 8 for layer in attn)
    assert len(_names(model, r"tower\d+_block5_mlp_add")) == 8
    decoder = model.get_layer("decoder_attn")
    assert isinstance(decoder, CrossAttention) and _inbound(decoder) == 1
    assert model.get_layer("decoder_query").output_shape == (None, 1, 1024)


def _tiny(builder=perceiver, **kwargs):
    config = dict(input_shape=(8, 8, 1), num_classes=10, num_latents=8, latent_dim=16,
                  self_attends_per_block=2, self_attend_heads=2, num_bands=2)
    return builder(**{**config, **kwargs})


def test_unshared_weights_add_exactly_the_repeated_sets():
    shared = _tiny(num_cross_attends=4)
    unshared = _tiny(num_cross_attends=4, share_cross_attend_weights=False,
                     share_latent_weights=False)
    cross = _part(shared, "cross1_")
    tower = _part(shared, "latent0_")
    assert unshared.count_params() == shared.count_params() + 2 * cross + 3 * tower
    assert len(_names(unshared, r"cross\d+_attn")) == 4
    assert len(_names(unshared, r"latent\d+_block0_attn")) == 4
    assert len({id(w) for w in shared.weights}) == len(shared.weights)


def test_repeated_blocks_use_the_same_variables():
    """Every application of a shared layer computes with its one weight set: the layer's outputs
    at each call site equal a fresh copy of it (given those weights) applied to its inputs there."""
    keras.utils.set_random_seed(3)
    model = _tiny(num_cross_attends=3)  # cross-attend sets: cross0 once, cross1 twice
    x = samples_for(model, 3)
    for name, calls in (("cross1_attn", 2), ("cross1_norm_kv", 2), ("latent0_block1_attn", 3),
                        ("latent0_block0_mlp_fc2", 3)):
        layer = model.get_layer(name)
        assert _inbound(layer) == calls
        sites = [layer.get_input_at(i) for i in range(calls)]
        arity = len(sites[0]) if isinstance(sites[0], list) else 1
        flat = [t for site in sites for t in (site if arity > 1 else [site])]
        probe = keras.Model(model.inputs, flat + [layer.get_output_at(i) for i in range(calls)])
        values = probe.predict(x, verbose=0)
        inputs = [values[i * arity:(i + 1) * arity] for i in range(calls)]
        inputs = [v if arity > 1 else v[0] for v in inputs]
        copy = layer.__class__.from_config(layer.get_config())
        copy(inputs[0])
        copy.set_weights(layer.get_weights())
        for i in range(calls):
            np.testing.assert_allclose(copy(inputs[i]).numpy(), values[len(flat) + i],
                                       rtol=1e-5, atol=1e-6)
    first, later = model.get_layer("cross0_attn"), model.get_layer("cross1_attn")
    assert not {id(w) for w in first.weights} & {id(w) for w in later.weights}
    assert len({id(w) for w in model.weights}) == len(model.weights)


def test_sharing_survives_the_micro_rewrites():
    model = create_model("perceiver_micro")
    rewritten, applied = apply_micro_rewrites(model)
    assert applied == ["gelu", "dense_as_conv1x1"]
    assert rewritten.count_params() == model.count_params()
    assert _inbound(rewritten.get_layer("latent0_block0_mlp_fc1")) == 2
    assert rewritten.get_layer("cross1_attn").get_config()["pointwise_projections"] is True


def numpy_fourier_features(height, width, num_bands, max_resolution):
    """Sec. 3.2 written out pixel by pixel: [y, x, sin(pi f_k y)_k, sin(pi f_k x)_k,
    cos(pi f_k y)_k, cos(pi f_k x)_k], f_k linear from 1 to max_resolution / 2."""
    rows = []
    for i in range(height):
        for j in range(width):
            pos = (-1 + 2 * i / (height - 1), -1 + 2 * j / (width - 1))
            row = list(pos)
            for fn in (np.sin, np.cos):
                for d, p in enumerate(pos):
                    top = max_resolution[d] / 2
                    for k in range(num_bands):
                        f = 1 + k * (top - 1) / (num_bands - 1)
                        row.append(fn(np.pi * f * p))
            rows.append(row)
    return np.asarray(rows)


@pytest.mark.parametrize("grid, bands, max_resolution", [
    ((16, 16), 4, None), ((6, 10), 3, None), ((16, 16), 8, (224, 224)),
])
def test_fourier_features_match_numpy(grid, bands, max_resolution):
    layer = FourierPositionEncoding(bands, max_resolution=max_resolution)
    got = layer(np.zeros((2, *grid, 1), np.float32)).numpy()
    expected = numpy_fourier_features(*grid, bands, max_resolution or grid)
    assert got.shape == (2, grid[0] * grid[1], 2 * (2 * bands + 1))
    np.testing.assert_allclose(got[0], expected, atol=2e-6)
    np.testing.assert_array_equal(got[0], got[1])


def test_byte_array_is_pixels_then_fourier_features():
    model = create_model("perceiver_micro")
    probe = keras.Model(model.inputs, model.get_layer("byte_array").output)
    x = samples_for(model, 2)
    byte_array = probe.predict(x, verbose=0)
    assert byte_array.shape == (2, 256, 1 + 18)
    np.testing.assert_array_equal(byte_array[..., 0], x.reshape(2, 256))
    np.testing.assert_allclose(byte_array[0, :, 1:], numpy_fourier_features(16, 16, 4, (16, 16)),
                               atol=2e-6)


def test_features_when_num_classes_is_zero():
    model = create_model("perceiver_micro", num_classes=0)
    assert model.output_shape == (None, 64)
    assert "head" not in [layer.name for layer in model.layers]
    io = create_model("perceiver_io_micro", num_classes=0)
    assert io.output_shape == (None, 64)
    dense = create_model("perceiver_io_micro", num_classes=0, decoder="dense")
    assert dense.output_shape == (None, 16, 16, 34)  # decoded queries: width of their features


def test_dense_output_query_is_per_pixel():
    model = create_model("perceiver_io_micro", decoder="dense", num_classes=3)
    assert model.output_shape == (None, 16, 16, 3)
    assert model.get_layer("decoder_query").output_shape == (None, 256, 34)  # 8 bands, 2 axes
    out = model.predict(samples_for(model, 2), verbose=0)
    assert np.abs(np.diff(out[0], axis=0)).max() > 1e-4  # pixels get different outputs
    coarse = create_model("perceiver_io_micro", decoder="dense", num_classes=3,
                          output_grid=(8, 4), output_num_bands=2)
    assert coarse.output_shape == (None, 8, 4, 3)
    assert coarse.get_layer("decoder_query").output_shape == (None, 32, 10)
    # One learned query with the paper's ImageNet width; the encoder does not change.
    assert create_model("perceiver_io_micro").get_layer("decoder_query").output_shape == \
        (None, 1, 64)


@pytest.mark.parametrize("name, kwargs, words", [
    ("perceiver_micro", {"input_shape": (16, 16)}, "static (height, width, channels)"),
    ("perceiver_micro", {"input_shape": (16, None, 1)}, "static (height, width, channels)"),
    ("perceiver_io_micro", {"input_shape": (256, 1)}, "static (height, width, channels)"),
    ("perceiver_micro", {"input_shape": (4, 16, 1)},
     "4 Fourier bands are too many for the input resolution 4x16"),
    ("perceiver_micro", {"input_shape": (6, 6, 1)}, "at most resolution // 2 = 3"),
    ("perceiver_micro", {"num_bands": 9}, "at most resolution // 2 = 8"),
    ("perceiver_io_micro", {"decoder": "dense", "output_grid": (4, 4)},
     "too many for the output grid resolution 4x4"),
    ("perceiver_micro", {"max_resolution": (16,)}, "one size per spatial axis"),
    ("perceiver_micro", {"self_attend_heads": 5}, "latent width 64 is not divisible by 5 heads"),
    ("perceiver_io_micro", {"cross_attend_heads": 2},
     "cross-attention query/key width 35 is not divisible by 2 heads"),
])
def test_bad_inputs_say_which_constraint(name, kwargs, words):
    with pytest.raises(InputShapeError, match=re.escape(words)):
        create_model(name, **kwargs)


def test_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="unknown decoder 'mask'"):
        _tiny(perceiver_io, decoder="mask")


def test_paper_max_resolution_allows_many_bands_on_small_inputs():
    """The constraint is on the frequency range: 64 bands up to 224 / 2 fit any input size."""
    model = create_model("perceiver_micro", num_bands=64, max_resolution=(224, 224))
    assert model.get_layer("byte_array").output_shape == (None, 256, 1 + 258)


def _top2_gap_ok(model, x):
    out = model.predict(x, verbose=0)
    top2 = np.sort(out, -1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]).min() >= 10 / 255 * (out.max() - out.min())


@pytest.mark.parametrize("name", ["perceiver_micro", "perceiver_io_micro"])
def test_micro_variants_through_shared_checks(name, tmp_path):
    # Top-1 of XNNPACK and TFLite Micro is only comparable where the float top-2 gap is well above
    # a few output LSBs; with seed 0 the smallest gap is about 20 (perceiver_micro) and 55
    # (perceiver_io_micro) LSBs of the output range.
    keras.utils.set_random_seed(0)
    model = create_model(name)
    x = samples_for(model)
    assert _top2_gap_ok(model, x)
    check = run_model_checks(model, tmp_path, x=x, target="nrf52840")
    assert_model_checks(check, (16, 10))
    ops = set(check.report["ops"])
    assert {"BATCH_MATMUL", "SOFTMAX", "CONCATENATION", "MEAN"} <= ops
    assert "FULLY_CONNECTED" not in ops  # dense_as_conv1x1 rewrite applied, CrossAttention too
    assert check.report["recipe"]["rewrites"] == ["gelu", "dense_as_conv1x1"]
    assert check.report["tflite_bytes"] <= 1024 * 1024
    assert check.report["arena_bytes"] <= 256 * 1024


@pytest.mark.slow  # about 35 s; the classification variants run the shared checks in the default suite
def test_dense_head_float_tflite_and_micro_vs_reference(tmp_path):
    """The per-pixel head: Keras = float TFLite, TFLite Micro = LiteRT reference kernels (+-1 LSB),
    and the dequantized int8 map close to float (top-1 over a flat map would mean nothing)."""
    from edgezoo.convert import convert_model
    from edgezoo.converters.tflite_model import dequantize_output
    from edgezoo.edge.profiles import get_profile
    from edgezoo.edge.runners.micro import MicroRunner
    from edgezoo.edge.verification import verify

    keras.utils.set_random_seed(0)
    model = create_model("perceiver_io_micro", decoder="dense", num_classes=3)
    x = samples_for(model, 8)
    assert config_round_trip(model, x) == 0.0
    assert keras_file_round_trip(model, x, tmp_path) == 0.0
    assert float_tflite_rel_diff(model, x) <= FLOAT_TFLITE_RTOL
    compressed, parsed = convert_model(model, "int8", get_profile("nrf52840"), x)
    assert "GELU" not in parsed.op_names and "FULLY_CONNECTED" not in parsed.op_names
    checked = verify(compressed.tflite, parsed, get_profile("nrf52840"), x)
    assert checked["fits"] is True
    assert checked["checks"]["micro_vs_reference_per_op"]["passed"], checked["failures"]
    outputs = MicroRunner(compressed.tflite, parsed).run(x)
    micro = dequantize_output(outputs, parsed.outputs[0]).reshape(8, 16, 16, 3)
    float_out = model.predict(x, verbose=0)
    # Measured (seed 0): mean error 2.7 % of the output range, correlation 0.996.
    assert np.abs(micro - float_out).mean() <= 0.04 * (float_out.max() - float_out.min())
    assert np.corrcoef(micro.ravel(), float_out.ravel())[0, 1] >= 0.99


def _split_one_head_too(self, inputs, training=None):
    """CrossAttention.call as it was: one head split and merged with size-1 transposes."""
    import tensorflow as tf
    from edgezoo.zoo.layers.attention import ATTENTION_KERNELS
    queries, kv = inputs
    nq, nkv = queries.shape[1], kv.shape[1]
    q = self._split(self.query(queries), nq)
    k, v = self._split(self.key(kv), nkv), self._split(self.value(kv), nkv)
    context = ATTENTION_KERNELS[self.attention](q, k, v, self.dropout, training)
    return self.out(tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, nq, self.value.units]))


def _litert_outputs(tflite, x):
    """Float TFLite output on LiteRT's builtin kernels and with XNNPACK (or the error text)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    got = {}
    for name, resolver in (("builtin", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES),
                           ("xnnpack", OpResolverType.AUTO)):
        try:
            interp = Interpreter(model_content=tflite, experimental_op_resolver_type=resolver)
            interp.allocate_tensors()
            inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
            interp.set_tensor(inp["index"], x)
            interp.invoke()
            got[name] = interp.get_tensor(out["index"])
        except RuntimeError as err:
            got[name] = str(err)
    return got


def test_trained_decoder_converts_and_runs_on_cpu(monkeypatch):
    """perceiver_io_micro with non-zero biases (as after training) converts to a float graph that
    LiteRT prepares and runs, builtin and XNNPACK, equal to Keras. Negative control: the one-head
    split the converter mis-folds (4-D-input FULLY_CONNECTED with a 3-D declared output) fails to
    prepare on the same weights."""
    from edgezoo.converters.quantize import convert
    keras.utils.set_random_seed(0)
    model = create_model("perceiver_io_micro")
    rng = np.random.default_rng(0)
    model.set_weights([w + 0.05 * rng.standard_normal(w.shape).astype(w.dtype) if w.ndim == 1
                       else w for w in model.get_weights()])
    x = samples_for(model, 1)
    ref = model.predict(x, verbose=0)
    got = _litert_outputs(convert(model, "none"), x)
    for name, out in got.items():
        assert not isinstance(out, str), (name, out)
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), name

    monkeypatch.setattr(CrossAttention, "call", _split_one_head_too)
    rebuilt = keras.Model.from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    broken = _litert_outputs(convert(rebuilt, "none"), x)
    assert isinstance(broken["builtin"], str) and "MEAN" in broken["builtin"], broken["builtin"]


@pytest.mark.parametrize("heads, queries", [(2, 1), (4, 1), (4, 3)])
def test_multi_head_cross_attention_with_few_queries_converts_and_runs_on_cpu(heads, queries):
    """The converter fold that broke the one-head decoder (size-1 transposes folded into a
    FULLY_CONNECTED) does not break multi-head attention with a single query (as in a
    classification decoder): with non-zero biases and a MEAN after it (LayerNorm), LiteRT's
    builtin and XNNPACK kernels equal Keras."""
    from edgezoo.converters.quantize import convert
    keras.utils.set_random_seed(0)
    kv = keras.Input((8, 16), batch_size=1)
    q = (keras.layers.GlobalAveragePooling1D(keepdims=True)(kv) if queries == 1
         else kv[:, :queries])
    y = CrossAttention(num_heads=heads)([keras.layers.Dense(16)(q), kv])
    y = keras.layers.LayerNormalization()(y)
    model = keras.Model(kv, keras.layers.Dense(5)(keras.layers.GlobalAveragePooling1D()(y)))
    rng = np.random.default_rng(0)
    model.set_weights([w + 0.05 * rng.standard_normal(w.shape).astype(w.dtype) if w.ndim == 1
                       else w for w in model.get_weights()])
    x = rng.normal(size=(1, 8, 16)).astype(np.float32)
    ref = model.predict(x, verbose=0)
    for name, out in _litert_outputs(convert(model, "none"), x).items():
        assert not isinstance(out, str), (name, out)
        assert np.abs(out - ref).max() <= 1e-5, name
