import numpy as np
import pytest
import tf_keras as keras

from edgezoo.base.errors import InputShapeError
from edgezoo.zoo import create_model, model_info
from edgezoo.zoo.resnest import resnest, split_attention
from model_case import assert_model_checks, run_model_checks, samples_for

# Parameter counts of timm 1.0.31's models (pretrained=False, 1000 classes), read offline:
# sum(p.numel() for p in model.parameters()), i.e. every weight but BatchNorm's running
# mean/variance, which PyTorch keeps as buffers.
TIMM_PARAMS = {
    "resnest50": 27_483_240,  # timm resnest50d
    "resnest101": 48_275_016,  # timm resnest101e
    "resnest200": 70_201_544,  # timm resnest200e
    "resnest269": 110_929_480,  # timm resnest269e
}
# The same models part by part: timm's conv1 + bn1 (the deep stem), layer1..layer4 and fc.
TIMM_PARTS = {
    "resnest50": {"stem": 28_640 + 128, "layer1": 235_296, "layer2": 1_320_704,
                  "layer3": 7_696_640, "layer4": 16_152_832, "fc": 2_049_000},
    "resnest101": {"stem": 112_576 + 256, "layer1": 255_776, "layer2": 1_320_704,
                   "layer3": 28_383_872, "layer4": 16_152_832, "fc": 2_049_000},
    "resnest200": {"stem": 112_576 + 256, "layer1": 255_776, "layer2": 7_427_584,
                   "layer3": 44_203_520, "layer4": 16_152_832, "fc": 2_049_000},
    "resnest269": {"stem": 112_576 + 256, "layer1": 255_776, "layer2": 9_259_648,
                   "layer3": 58_806_272, "layer4": 40_445_952, "fc": 2_049_000},
}
INPUT_SIZES = {"resnest50": 224, "resnest101": 256, "resnest200": 320, "resnest269": 416}


def torch_style_count(weights):
    """Weights PyTorch counts as parameters: all but BatchNorm's moving statistics."""
    return sum(int(np.prod(w.shape)) for w in weights if "moving_" not in w.name)


def count_by_part(model):
    parts = {}
    for layer in model.layers:
        part = layer.name.split("_")[0]
        parts[part] = parts.get(part, 0) + torch_style_count(layer.weights)
    return {k: v for k, v in parts.items() if v}


@pytest.mark.parametrize("name", [  # the two largest take 10 s each to build: slow suite
    pytest.param(n, marks=pytest.mark.slow) if n in ("resnest200", "resnest269") else n
    for n in TIMM_PARAMS])
def test_paper_variants_have_timms_parameter_counts(name):
    model = create_model(name)
    try:
        assert torch_style_count(model.weights) == TIMM_PARAMS[name]
        assert count_by_part(model) == TIMM_PARTS[name]
        size = INPUT_SIZES[name]
        assert model.input_shape == (None, size, size, 3)
        assert model.output_shape == (None, 1000)
        assert model_info(name)["arxiv"] == "2004.08955"
    finally:
        del model
        keras.backend.clear_session()


def test_first_strided_block_matches_timm_module_by_module():
    """timm resnest50d.layer2[0]: each submodule's parameter count."""
    model = create_model("resnest50")

    def count(suffix):
        return torch_style_count(model.get_layer(f"layer2_block0_{suffix}").weights)

    assert count("conv1") == 32_768 and count("bn1") == 256
    # conv2 = SplitAttn: grouped 3x3 conv (radix 2), bn0, fc1 (128 -> 64), bn1, fc2 (64 -> 256).
    assert count("splat_conv") == 147_456 and count("splat_bn0") == 512
    assert count("splat_fc1") == 8_256 and count("splat_bn1") == 128
    assert count("splat_fc2") == 16_640
    assert count("conv3") == 65_536 and count("bn3") == 1_024
    assert count("down_conv") + count("down_bn") == 132_096  # avg pool, 1x1 conv, BN
    assert model.get_layer("layer2_block0_avd").pool_size == (3, 3)  # stride after the splat conv
    assert model.get_layer("layer2_block0_splat_conv").strides == (1, 1)
    assert model.get_layer("layer2_block0_down_pool").strides == (2, 2)
    assert "layer1_block0_avd" not in [layer.name for layer in model.layers]


@pytest.mark.parametrize("kwargs, params", [
    # timm resnest50d_4s2x40d: radix 4, cardinality 2, width 40, avd before the 3x3 conv.
    ({"bottleneck_width": 40, "cardinality": 2, "radix": 4, "avd_first": True}, 30_417_592),
    # timm resnest50d_1s4x24d: radix 1 (sigmoid gate), cardinality 4, width 24.
    ({"bottleneck_width": 24, "cardinality": 4, "radix": 1, "avd_first": True}, 25_677_000),
])
def test_builder_options_match_timms_ablation_models(kwargs, params):
    model = resnest(layers=(3, 4, 6, 3), stem_width=32, **kwargs)
    assert torch_style_count(model.weights) == params


def _np_grouped_conv3x3(x, kernel, groups):
    """'same' 3x3 convolution, stride 1, no bias; kernel (3, 3, Cin / groups, Cout)."""
    n, h, w, cin = x.shape
    cout = kernel.shape[-1]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, cout))
    gi, go = cin // groups, cout // groups
    for g in range(groups):
        for i in range(3):
            for j in range(3):
                out[..., g * go:(g + 1) * go] += xp[:, i:i + h, j:j + w, g * gi:(g + 1) * gi] @ \
                    kernel[i, j, :, g * go:(g + 1) * go]
    return out


def _np_grouped_dense(x, kernel, bias, groups):
    """A grouped 1x1 convolution on (N, C) vectors; kernel (1, 1, C / groups, units)."""
    kernel = kernel[0, 0]
    gi, go = x.shape[-1] // groups, kernel.shape[-1] // groups
    parts = [x[:, g * gi:(g + 1) * gi] @ kernel[:, g * go:(g + 1) * go] for g in range(groups)]
    return np.concatenate(parts, -1) + bias


def _np_bn(x, gamma, beta, mean, var, eps):
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def numpy_split_attention(x, weights, radix, cardinality, eps):
    """The paper's split attention (Sec. 3.1-3.2), written out in NumPy.

    The grouped conv gives ``radix`` splits of C channels (radix-major); the
    grouped fc2 gives logits ordered (cardinal group, radix, channel).
    """
    conv, bn0, fc1_w, fc1_b, bn1, fc2_w, fc2_b = weights
    y = np.maximum(_np_bn(_np_grouped_conv3x3(x, conv, cardinality * radix), *bn0, eps), 0)
    n, h, w, rc = y.shape
    c = rc // radix
    splits = y.reshape(n, h, w, radix, c)
    gap = splits.sum(3).mean((1, 2))  # (N, C)
    z = np.maximum(_np_bn(_np_grouped_dense(gap, fc1_w, fc1_b, cardinality), *bn1, eps), 0)
    logits = _np_grouped_dense(z, fc2_w, fc2_b, cardinality)  # (N, R * C)
    if radix == 1:
        return y / (1 + np.exp(-logits[:, None, None, :]))
    logits = logits.reshape(n, cardinality, radix, c // cardinality)
    a = np.exp(logits - logits.max(2, keepdims=True))
    a = a / a.sum(2, keepdims=True)  # softmax over the radix axis, per cardinal group
    a = a.transpose(0, 2, 1, 3).reshape(n, radix, c)  # radix-major, as the splits
    return np.einsum("nhwrc,nrc->nhwc", splits, a)


@pytest.mark.parametrize("radix, cardinality", [(2, 1), (4, 2), (1, 1)])
def test_split_attention_matches_numpy(radix, cardinality):
    eps, channels, attn = 1e-5, 8, 8
    inputs = keras.Input((6, 5, 8))
    outputs = split_attention(inputs, channels, radix=radix, cardinality=cardinality,
                              attn_channels=attn, bn={"epsilon": eps}, name="sa")
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)

    def bn(width):
        return [rng.uniform(0.5, 1.5, width), rng.normal(0, 0.2, width),
                rng.normal(0, 0.2, width), rng.uniform(0.5, 2.0, width)]

    def kernel(*shape):
        return rng.normal(0, 0.5, shape)

    by_layer = {
        "conv": [kernel(3, 3, 8 // (radix * cardinality), channels * radix)],
        "bn0": bn(channels * radix),
        "fc1": [kernel(1, 1, channels // cardinality, attn), rng.normal(0, 0.2, attn)],
        "bn1": bn(attn),
        "fc2": [kernel(1, 1, attn // cardinality, channels * radix),
                rng.normal(0, 0.5, channels * radix)],
    }
    for name, values in by_layer.items():
        model.get_layer(f"sa_{name}").set_weights([np.asarray(v, np.float32) for v in values])
    weights = [by_layer["conv"][0], by_layer["bn0"], *by_layer["fc1"], by_layer["bn1"],
               *by_layer["fc2"]]
    x = rng.uniform(0, 1, (3, 6, 5, 8)).astype(np.float32)
    expected = numpy_split_attention(x.astype(np.float64), weights, radix, cardinality, eps)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)


def test_features_when_num_classes_is_zero():
    model = create_model("resnest_micro", num_classes=0)
    assert model.output_shape == (None, 256)
    assert "fc" not in [layer.name for layer in model.layers]
    features = create_model("resnest50", num_classes=0)
    assert features.output_shape == (None, 2048)
    assert torch_style_count(features.weights) == TIMM_PARAMS["resnest50"] - 2_049_000


@pytest.mark.parametrize("name, shape, words", [
    ("resnest50", (200, 224, 3), "multiples of the total stride 32"),
    ("resnest50", (16, 16, 3), "at least the total stride 32"),
    ("resnest_micro", (40, 32, 1), "multiples of the total stride 16"),
    ("resnest_micro", (32, 8, 1), "at least the total stride 16"),
    ("resnest_micro", (32, 32), "static (height, width, channels)"),
    ("resnest_micro", (32, None, 1), "static (height, width, channels)"),
])
def test_bad_input_shapes_say_why(name, shape, words):
    with pytest.raises(InputShapeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        create_model(name, input_shape=shape)


def test_other_input_sizes_build():
    model = create_model("resnest_micro", input_shape=(48, 64, 3))
    assert model.output_shape == (None, 10)
    assert model.get_layer("layer3_block0_relu3").output_shape == (None, 3, 4, 256)


def test_resnest_micro_through_shared_checks(tmp_path):
    keras.utils.set_random_seed(0)
    model = create_model("resnest_micro")
    x = samples_for(model)
    # An untrained ResNeSt gives every random image nearly the same logits; XNNPACK and TFLite
    # Micro differ by up to 3 output LSBs, so top-1 is only comparable where the float top-2
    # gap is well above that. Seed 0 gives about 28 LSBs on every sample (seed 1: under 4).
    out = model.predict(x, verbose=0)
    top2 = np.sort(out, -1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() >= 10 / 255 * (out.max() - out.min())
    check = run_model_checks(model, tmp_path, x=x, target="nrf52840")
    assert_model_checks(check, (16, 10))
    ops = set(check.report["ops"])
    assert {"SOFTMAX", "TRANSPOSE", "SPLIT", "MUL", "MEAN"} <= ops  # r-softmax and split sums
    assert "FULLY_CONNECTED" not in ops  # dense_as_conv1x1 rewrite applied
    assert check.report["tflite_bytes"] <= 1024 * 1024
    assert check.report["arena_bytes"] <= 256 * 1024
