"""Deformable DETR: the reference implementation's parameter count, Hugging Face checkpoints
(transformers 4 and 5 names) reproduced, deformable sampling against a NumPy grid_sample, and
bad requests refused."""
import numpy as np
import pytest
import tensorflow as tf

from checkpoint_case import ATOL, REFERENCE, REL_STD
from edgezoo.base.errors import ModelFileError
from edgezoo.zoo import create_model, from_checkpoint
from edgezoo.zoo.deformable_detr import MultiScaleDeformableAttention, deformable_detr

HF5, HF4 = REFERENCE / "hf" / "deformable_detr", REFERENCE / "hf4" / "deformable_detr"


def test_parameter_count_is_the_reference_implementations():
    """HF DeformableDetrForObjectDetection (timm ResNet-50) in its default configuration (2
    labels; the per-layer heads are one module, counted once): 40,046,792 parameters()."""
    model = deformable_detr((64, 64, 3), num_classes=2)
    assert int(sum(np.prod(v.shape) for v in model.trainable_variables)) == 40_046_792


@pytest.mark.parametrize("folder", [HF5, HF4], ids=["transformers5_hf_resnet", "transformers4_timm"])
def test_reproduces_the_reference_outputs(folder):
    io = np.load(folder / "reference_io.npz")
    model = from_checkpoint(folder, input_shape=(64, 64, 3))
    logits, boxes = model.predict(io["pixel_values_nchw"].transpose(0, 2, 3, 1), verbose=0)
    assert float(io["logits"].std(axis=1).mean()) > 0.01  # the queries differ: sampling matters
    for ours, name in ((logits, "logits"), (boxes, "pred_boxes")):
        err = float(np.abs(ours - io[name]).max())
        assert err <= ATOL and err <= REL_STD * float(io[name].std()), (name, err)


def _grid_sample(value, x, y):
    """NumPy bilinear sampling of value (H, W, C) at pixel coordinates (x, y), zero outside."""
    h, w, _ = value.shape
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    out = np.zeros(value.shape[-1])
    for xi in (x0, x0 + 1):
        for yi in (y0, y0 + 1):
            if 0 <= xi < w and 0 <= yi < h:
                out += (1 - abs(x - xi)) * (1 - abs(y - yi)) * value[yi, xi]
    return out


def test_deformable_attention_against_numpy():
    """The layer against an independent loop over heads, levels and points of PyTorch's
    ``grid_sample(align_corners=False, padding_mode="zeros")`` semantics, with offsets large
    enough to send points outside the maps."""
    shapes, heads, points, dim = [(4, 6), (2, 3)], 2, 3, 8
    layer = MultiScaleDeformableAttention(shapes, heads, points)
    rng = np.random.default_rng(0)
    tokens = sum(h * w for h, w in shapes)
    q = rng.normal(size=(1, 5, dim)).astype(np.float32)
    v = rng.normal(size=(1, tokens, dim)).astype(np.float32)
    ref = rng.uniform(0, 1, (1, 5, 2)).astype(np.float32)
    out = layer([tf.constant(q), tf.constant(v), tf.constant(ref)]).numpy()
    for dense in (layer.sampling_offsets, layer.attention_weights):  # spread the samples wide
        dense.kernel.assign(dense.kernel * 4)
    out = layer([tf.constant(q), tf.constant(v), tf.constant(ref)]).numpy()

    lin = lambda d, x: x @ d.kernel.numpy() + d.bias.numpy()  # noqa: E731
    value = lin(layer.value_proj, v[0]).reshape(tokens, heads, dim // heads)
    offsets = lin(layer.sampling_offsets, q[0]).reshape(5, heads, len(shapes), points, 2)
    logits = lin(layer.attention_weights, q[0]).reshape(5, heads, len(shapes) * points)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights = (weights / weights.sum(-1, keepdims=True)).reshape(5, heads, len(shapes), points)
    expected = np.zeros((5, heads, dim // heads))
    outside = 0
    for i in range(5):
        for h in range(heads):
            start = 0
            for lvl, (hh, ww) in enumerate(shapes):
                level = value[start:start + hh * ww, h].reshape(hh, ww, -1)
                for p in range(points):
                    loc = ref[0, i] + offsets[i, h, lvl, p] / np.array([ww, hh])
                    x, y = loc[0] * ww - 0.5, loc[1] * hh - 0.5
                    outside += not (0 <= x <= ww - 1 and 0 <= y <= hh - 1)
                    expected[i, h] += weights[i, h, lvl, p] * _grid_sample(level, x, y)
                start += hh * ww
    expected = lin(layer.output_proj, expected.reshape(5, dim))
    assert outside > 5  # the zero padding is exercised
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_bad_requests_are_refused(tmp_path):
    import json
    import shutil

    with pytest.raises(ModelFileError, match="has 4 levels; 3 were asked for"):
        from_checkpoint(HF4, input_shape=(64, 64, 3), num_levels=3)
    folder = tmp_path / "refine"
    shutil.copytree(HF4, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "with_box_refine": True}))
    with pytest.raises(ModelFileError, match="with_box_refine=true is not built yet"):
        from_checkpoint(folder, input_shape=(64, 64, 3))


def test_micro_variant_builds_and_round_trips_its_layers():
    from model_case import layer_config_mismatches

    model = create_model("deformable_detr_micro")
    assert not layer_config_mismatches(model)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 10, 4), (None, 10, 4)]


def test_group_norm_against_numpy():
    from edgezoo.zoo.deformable_detr.layers import GroupNorm

    x = np.random.default_rng(0).normal(2.0, 3.0, (2, 3, 5, 8)).astype(np.float32)
    layer = GroupNorm(4, 1e-5)
    layer.build(x.shape)
    layer.gamma.assign(np.linspace(0.5, 1.5, 8))
    layer.beta.assign(np.linspace(-1, 1, 8))
    g = x.reshape(2, 15, 4, 2)
    mean = g.mean(axis=(1, 3), keepdims=True)
    var = g.var(axis=(1, 3), keepdims=True)
    expected = ((g - mean) / np.sqrt(var + 1e-5)).reshape(x.shape) * np.linspace(0.5, 1.5, 8) \
        + np.linspace(-1, 1, 8)
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)


def test_deformable_detr_micro_graph_checks(tmp_path):
    """The shared graph checks (config and .keras round trips, batch independence, float TFLite)."""
    from model_case import assert_graph_checks, run_graph_checks
    from edgezoo.zoo.data.shapes import make_split

    check = run_graph_checks(create_model("deformable_detr_micro"), tmp_path,
                             x=make_split(5, 4).x)
    assert_graph_checks(check, ((4, 10, 4), (4, 10, 4)))
