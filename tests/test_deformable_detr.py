"""Deformable DETR: the reference implementation's parameter count, Hugging Face checkpoints
(transformers 4 and 5 names) reproduced, deformable sampling against a NumPy grid_sample, and
bad requests refused; the box-refinement and two-stage variants against outputs of the
reference implementation recorded in ``tests/data/deformable_detr_variants.json``."""
import json
from pathlib import Path

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


@pytest.mark.parametrize("options, count", [
    (dict(box_refine=True), 40_712_422),
    (dict(box_refine=True, two_stage=True, num_queries=10), 41_021_418)],
    ids=["box_refine", "two_stage"])
def test_variant_parameter_counts_are_the_reference_implementations(options, count):
    """The paper's code and transformers 4: with box refinement one class and box head per
    decoder layer (40,712,422); two-stage adds the proposal head, enc_output and pos_trans and
    drops the query embeddings (41,021,418; the query count does not enter it)."""
    model = deformable_detr((64, 64, 3), num_classes=2, **options)
    assert int(sum(np.prod(v.shape) for v in model.trainable_variables)) == count


VARIANTS = json.loads((Path(__file__).parent / "data" / "deformable_detr_variants.json").read_text())


def _reference_value(rng, name, shape):
    """The generator's rule (recorded with the fixture): norm scales and running variances in
    [0.5, 1.5], every other tensor normal / sqrt(fan-in)."""
    if name.endswith("running_var") or (len(shape) == 1 and name.endswith("weight")
                                        and ("norm" in name or "normalization" in name)):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def variant_checkpoint(case, folder, edit=None):
    """Write the fixture's checkpoint (its tensor names, the weights regenerated from the seed)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(VARIANTS["weights_seed"])
    values = [_reference_value(rng, n, tuple(shape)) for n, shape in case["groups"]]
    tensors = {name: values[g] for name, g in case["tensors"]}
    if edit:
        tensors = edit(tensors)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(case["config"]))
    shape = case["input_shape_nchw"]
    x = np.random.default_rng(VARIANTS["input_seed"]).standard_normal(shape).astype(np.float32)
    return folder, x.transpose(0, 2, 3, 1)


def _errors(model, x, case):
    logits, boxes = model.predict(x, verbose=0)
    return {name: float(np.abs(ours - np.asarray(case[name])).max())
            for ours, name in ((logits, "logits"), (boxes, "pred_boxes"))}


@pytest.mark.parametrize("tag", sorted(VARIANTS["cases"]))
def test_variants_reproduce_the_reference_outputs(tag, tmp_path):
    """Box refinement and two-stage checkpoints as transformers 4 ``state_dict``s (every head
    copy) and as transformers 5 ``save_pretrained`` writes them (each shared tensor once, tied
    class heads, legacy names); ``two_stage_448`` has tokens whose proposals are masked."""
    case = VARIANTS["cases"][tag]
    folder, x = variant_checkpoint(case, tmp_path / tag)
    model = from_checkpoint(folder, input_shape=x.shape[1:])
    errors = _errors(model, x, case)
    for name, err in errors.items():
        spread = float(np.std(case[name]))
        assert err <= ATOL, (name, err)
        if spread > 1e-3:  # two_stage_448 picks masked proposals: every box is 1 there
            assert err <= REL_STD * spread, (name, err)
    if tag == "two_stage_448":
        assert case["proposals_masked"] > 0


def test_variant_heads_are_not_interchangeable(tmp_path):
    """Negative controls: the refinement model's two class heads swapped moves the logits; two
    copies of one head that differ are refused."""
    case = VARIANTS["cases"]["refine_v4"]

    def swap(t):
        for w in ("weight", "bias"):
            t[f"class_embed.0.{w}"], t[f"class_embed.1.{w}"] = t[f"class_embed.1.{w}"], t[f"class_embed.0.{w}"]
        return t

    folder, x = variant_checkpoint(case, tmp_path / "swapped", swap)
    assert _errors(from_checkpoint(folder, input_shape=x.shape[1:]), x, case)["logits"] > 0.1

    def differ(t):
        t["model.decoder.bbox_embed.1.layers.2.bias"] = t["bbox_embed.1.layers.2.bias"] + 1
        return t

    folder, _ = variant_checkpoint(case, tmp_path / "differ", differ)
    with pytest.raises(ModelFileError, match="bbox_embed.1.layers.2.bias differs"):
        from_checkpoint(folder, input_shape=(64, 64, 3))


@pytest.mark.parametrize("tag", [  # refine_v4's names are a subset of two_stage_v4's: slow suite
    pytest.param("refine_v4", marks=pytest.mark.slow), "two_stage_v4"])
def test_variants_write_back_a_transformers4_state_dict(tag, tmp_path):
    """``to_checkpoint`` writes every name a transformers 4 state_dict of the reference holds
    (backbone aside: it writes timm's, whose stem is 64 wide) and reads back bit for bit."""
    from edgezoo.zoo import to_checkpoint
    from safetensors.numpy import load_file

    case = VARIANTS["cases"][tag]
    model = deformable_detr((64, 64, 3), num_classes=5, backbone_depths=(1, 1, 1, 1),
                            backbone_widths=(8, 16, 32, 64), stem_width=64, d_model=64,
                            num_heads=4, ffn_dim=128, encoder_layers=2, decoder_layers=2,
                            num_queries=10, box_refine=True, two_stage=tag.startswith("two"))
    written = to_checkpoint(model, tmp_path / "out")
    names = set(load_file(str(written / "model.safetensors")))
    expected = {n for n, _ in case["tensors"] if not n.startswith("model.backbone")}
    assert {n for n in names if not n.startswith("model.backbone")} == expected
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    again = from_checkpoint(written, input_shape=(64, 64, 3))
    for ours, theirs in zip(again.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(ours, theirs)


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


@pytest.mark.parametrize("coords", [2, 4], ids=["points", "boxes"])
def test_deformable_attention_against_numpy(coords):
    """The layer against an independent loop over heads, levels and points of PyTorch's
    ``grid_sample(align_corners=False, padding_mode="zeros")`` semantics, with offsets large
    enough to send points outside the maps; around reference points (offsets in pixels of each
    level) or reference boxes (offsets x box size / 2 / points, as box refinement samples)."""
    shapes, heads, points, dim = [(4, 6), (2, 3)], 2, 3, 8
    layer = MultiScaleDeformableAttention(shapes, heads, points)
    rng = np.random.default_rng(0)
    tokens = sum(h * w for h, w in shapes)
    q = rng.normal(size=(1, 5, dim)).astype(np.float32)
    v = rng.normal(size=(1, tokens, dim)).astype(np.float32)
    ref = rng.uniform(0, 1, (1, 5, coords)).astype(np.float32)
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
                    if coords == 2:
                        loc = ref[0, i] + offsets[i, h, lvl, p] / np.array([ww, hh])
                    else:
                        loc = ref[0, i, :2] + offsets[i, h, lvl, p] / points * ref[0, i, 2:] * 0.5
                    x, y = loc[0] * ww - 0.5, loc[1] * hh - 0.5
                    outside += not (0 <= x <= ww - 1 and 0 <= y <= hh - 1)
                    expected[i, h] += weights[i, h, lvl, p] * _grid_sample(level, x, y)
                start += hh * ww
    expected = lin(layer.output_proj, expected.reshape(5, dim))
    assert outside > 5  # the zero padding is exercised
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


def test_two_stage_proposals_against_numpy():
    """The fixed proposals (pixel centres, side 0.05 x 2^level, masked outside (0.01, 0.99)),
    the top-k selection on the first class and the proposals' sine embeddings, each against a
    hand-written NumPy version."""
    from edgezoo.zoo.deformable_detr.layers import (OUTSIDE_LOGIT, ProposalPositions,
                                                    SelectProposals, encoder_proposals)

    shapes = [(60, 2), (1, 1)]  # 60 rows: centres 1/120 and 119/120 lie outside (0.01, 0.99)
    logits, valid = encoder_proposals(shapes)
    box = lambda p: 1 / (1 + np.exp(-p))  # noqa: E731
    assert valid.tolist() == [False] * 2 + [True] * 116 + [False] * 2 + [True]
    np.testing.assert_allclose(box(logits[2]), [0.25, 1.5 / 60, 0.05, 0.05], rtol=1e-5)
    np.testing.assert_allclose(box(logits[-1]), [0.5, 0.5, 0.1, 0.1], rtol=1e-5)
    assert (logits[~valid] == OUTSIDE_LOGIT).all()

    rng = np.random.default_rng(0)
    n = len(valid)
    scores = rng.normal(size=(2, n, 3)).astype(np.float32)
    scores[0, 0, 0] = 10.0  # a masked token can win, as in the reference: its box is then 1
    delta = rng.normal(size=(2, n, 4)).astype(np.float32)
    out = SelectProposals(shapes, 5)([tf.constant(scores), tf.constant(delta)]).numpy()
    for b in range(2):
        top = np.argsort(-scores[b, :, 0], kind="stable")[:5]
        expected = np.where(valid[top, None], delta[b, top] + logits[top], OUTSIDE_LOGIT)
        np.testing.assert_allclose(out[b], expected, rtol=1e-6)
    assert (box(out[0, 0]) == 1.0).all()

    dim = 8
    pos = ProposalPositions(dim)(tf.constant(out)).numpy()
    feats = dim // 2
    t = 10000.0 ** (2 * (np.arange(feats) // 2) / feats)
    p = box(out)[..., None] * 2 * np.pi / t
    expected = np.where(np.arange(feats) % 2 == 0, np.sin(p), np.cos(p)).reshape(2, 5, 4 * feats)
    np.testing.assert_allclose(pos, expected, atol=1e-5)


def test_bad_requests_are_refused(tmp_path):
    import shutil

    with pytest.raises(ModelFileError, match="has 4 levels; 3 were asked for"):
        from_checkpoint(HF4, input_shape=(64, 64, 3), num_levels=3)
    folder = tmp_path / "two_stage"
    shutil.copytree(HF4, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "two_stage": True}))
    with pytest.raises(ModelFileError, match="two_stage=true without with_box_refine"):
        from_checkpoint(folder, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="set box_refine=True"):
        deformable_detr((64, 64, 3), two_stage=True)
    with pytest.raises(ValueError, match="selects 300 proposals from 85 tokens"):
        deformable_detr((64, 64, 3), box_refine=True, two_stage=True)


def test_two_stage_trainer_scores_every_encoder_token_as_a_class_agnostic_proposal():
    """The two-stage trainer's first pair is every token's proposal logits and boxes, boxes =
    sigmoid(delta + the token's fixed proposal): by hand for a central token of the first level,
    whose proposal is its pixel centre with side 0.05."""
    import tf_keras as keras

    from edgezoo.zoo.data.shapes import make_split
    from edgezoo.zoo.deformable_detr.layers import OUTSIDE_LOGIT
    from edgezoo.zoo.detr.train import auxiliary_trainer

    keras.utils.set_random_seed(0)
    model = create_model("deformable_detr_micro_two_stage")
    trainer = auxiliary_trainer(model)
    assert trainer.class_agnostic_pairs == (0,)
    assert trainer.output_names[:2] == ["proposal_logits", "encoder_proposal_boxes"]
    x = make_split(2, 3).x
    probe = keras.Model(trainer.inputs, [model.get_layer("proposal_box_delta").output,
                                         *trainer.outputs[:2]])
    delta, logits, boxes = (np.asarray(v) for v in probe(x))
    shapes = model.get_layer("proposals").shapes
    tokens = sum(h * w for h, w in shapes)
    assert logits.shape[:2] == boxes.shape[:2] == (len(x), tokens)
    h, w = shapes[0]
    i, j = h // 2, w // 2  # a central token of the first level: its proposal is valid
    fixed = np.array([(j + 0.5) / w, (i + 0.5) / h, 0.05, 0.05])
    logit = np.log(fixed / (1 - fixed))
    np.testing.assert_allclose(boxes[:, i * w + j], 1 / (1 + np.exp(-(delta[:, i * w + j] + logit))),
                               atol=1e-5)
    # the last level's proposals have side 0.05 x 2^(L-1); a side outside (0.01, 0.99) is masked
    if 0.05 * 2 ** (len(shapes) - 1) >= 0.99:
        np.testing.assert_allclose(boxes[:, -1], 1 / (1 + np.exp(-OUTSIDE_LOGIT)), atol=1e-6)


def test_class_agnostic_targets_keep_the_boxes():
    from edgezoo.zoo.detr.train import _class_agnostic

    objects = np.array([[3, 0.5, 0.5, 0.2, 0.2], [1, 0.2, 0.3, 0.1, 0.1]], np.float32)
    out = _class_agnostic(objects)
    np.testing.assert_array_equal(out[:, 0], [0, 0])
    np.testing.assert_array_equal(out[:, 1:], objects[:, 1:])
    assert objects[0, 0] == 3  # the caller's targets are untouched
    assert _class_agnostic(np.zeros((0, 5))).shape == (0, 5)  # an image with no objects


@pytest.mark.slow  # about 90 s on 2 cores; the trainer's outputs and targets: the two tests above
def test_two_stage_model_trains_with_its_encoder_proposal_loss():
    """The focal set loss on the encoder proposals (class-agnostic) and every decoder layer
    falls on a fixed batch, and the encoder's proposal head gets gradients."""
    import tf_keras as keras

    from edgezoo.zoo.data.shapes import make_split
    from edgezoo.zoo.detr.train import fit_detector
    from edgezoo.zoo.set_loss import DEFORMABLE_DETR_LOSS
    from edgezoo.zoo.training import deterministic

    deterministic(0)
    keras.utils.set_random_seed(0)
    model = create_model("deformable_detr_micro_two_stage")
    before = model.get_layer("proposal_logits").get_weights()[0].copy()
    history = fit_detector(model, make_split(3, 8), epochs=40, batch_size=8, learning_rate=1e-3,
                           loss=DEFORMABLE_DETR_LOSS)
    assert history[-1] < 0.6 * history[0], history
    assert not np.allclose(model.get_layer("proposal_logits").get_weights()[0], before)


@pytest.mark.slow  # about 80 s on 2 cores; the set loss and its heads: test_set_loss
def test_box_refinement_trains_every_layers_heads():
    """The auxiliary outputs of the refinement model are each decoder layer's own heads, and
    the focal set loss on all of them falls on a fixed batch."""
    import tf_keras as keras

    from edgezoo.zoo.data.shapes import make_split
    from edgezoo.zoo.detr.train import auxiliary_trainer, fit_detector
    from edgezoo.zoo.set_loss import DEFORMABLE_DETR_LOSS
    from edgezoo.zoo.training import deterministic

    deterministic(0)
    keras.utils.set_random_seed(0)
    model = create_model("deformable_detr_micro_refine")
    trainer = auxiliary_trainer(model)
    assert trainer.output_names == [
        "decoder0_logits", "decoder0_boxes", "logits", "boxes"]
    history = fit_detector(model, make_split(3, 8), epochs=40, batch_size=8, learning_rate=1e-3,
                           loss=DEFORMABLE_DETR_LOSS)
    assert history[-1] < 0.6 * history[0], history


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


@pytest.mark.parametrize("name", [  # the variants: 60-80 s each, slow suite; by default their
    "deformable_detr_micro",          # outputs against the reference checkpoints (above)
    pytest.param("deformable_detr_micro_refine", marks=pytest.mark.slow),
    pytest.param("deformable_detr_micro_two_stage", marks=pytest.mark.slow)])
def test_deformable_detr_micro_graph_checks(name, tmp_path):
    """The shared graph checks (config and .keras round trips, batch independence, float TFLite
    in LiteRT: the two-stage model's TOPK_V2 included)."""
    from model_case import assert_graph_checks, run_graph_checks
    from edgezoo.zoo.data.shapes import make_split

    check = run_graph_checks(create_model(name), tmp_path, x=make_split(5, 4).x)
    assert_graph_checks(check, ((4, 10, 4), (4, 10, 4)))


def test_int8_float_islands_are_listed():
    """Deformable sampling's indices come from a float FLOOR/CAST island in an otherwise int8
    graph: ``float_islands`` (the report's list) names those ops and layer; an all-int8 model
    and a float model have none."""
    import tf_keras as keras

    from edgezoo.converters.tflite_model import read_tflite

    q = keras.Input((3, 8), name="queries")
    v = keras.Input((6, 8), name="values")
    r = keras.Input((3, 2), name="reference")
    out = MultiScaleDeformableAttention([(2, 3)], 2, 2, name="sampling")([q, v, r])
    model = keras.Model([q, v, r], keras.layers.Dense(4, name="head")(out))
    plain = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    rng = np.random.default_rng(0)

    def int8(m):
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: (  # by input name: the converter sorts them
            {i.name.split(":")[0]: rng.uniform(0, 1, (1, *i.shape[1:])).astype(np.float32)
             for i in m.inputs} for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return read_tflite(conv.convert())

    islands = {i["op"]: i for i in int8(model).float_islands()}
    assert "FLOOR" in islands and "CAST" in islands
    assert any("sampling" in layer for layer in islands["FLOOR"]["layers"])
    assert "FULLY_CONNECTED" not in islands
    assert int8(plain).float_islands() == []
    float_model = read_tflite(tf.lite.TFLiteConverter.from_keras_model(plain).convert())
    assert float_model.float_islands() == []


@pytest.mark.slow  # about 70 s on 2 cores; tests/test_int8_reference.py covers the arbiter
def test_int8_micro_model_passes_the_per_op_gate_on_tflite_micro(tmp_path):
    """deformable_detr_micro int8 for stm32h743 (shapes calibration): every op of TFLite Micro
    equals LiteRT's reference kernels within the per-op table, or, for the sampling MUL where
    LiteRT is 1 LSB off, the NumPy derivation of TFLite Micro's integer arithmetic."""
    from edgezoo.convert import convert_pipeline

    report = convert_pipeline("deformable_detr_micro", tmp_path / "out", "int8", "stm32h743",
                              calib="shapes")
    per_op = report["per_op"]
    assert report["checks"]["micro_vs_reference_per_op"]["passed"], per_op["first_failure"]
    assert report["fits"] is True
    for row in per_op["arbitrated"]:
        assert row["op"] == "MUL" and row["arbitrated"]["micro_vs_derivation_lsb"] == 0
