"""DETR: the paper's parameter counts, Hugging Face checkpoints (transformers 4 and 5 names,
timm and HF ResNet backbones) reproduced, written back, and bad input refused."""
import math

import numpy as np
import pytest

from checkpoint_case import (REFERENCE, ATOL, REL_STD, full_size_layout, read_tensors,
                             assert_same_tensors, tensor_shapes)
from edgezoo.base.errors import InputShapeError, ModelFileError
from edgezoo.zoo import create_model, from_checkpoint, to_checkpoint
from edgezoo.zoo.detr import detr
from edgezoo.zoo.detr.layers import sine_positions

HF5, HF4 = REFERENCE / "hf" / "detr", REFERENCE / "hf4" / "detr"


def _trainable(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def test_parameter_counts_are_the_reference_implementations():
    """HF DetrForObjectDetection with the timm ResNet (as facebook/detr-resnet-50 is built) counts
    41,501,895 (R50) and 60,441,799 (R101) parameters() in its default configuration, which has 2
    labels (full-size-layouts.json: a [3, 256] class head); frozen batch-norm terms are buffers
    there and non-trainable here. With COCO's 91 classes the class head has 89 x 257 more. The
    seed article's DETRdemo counts 41,459,616 with torchvision's ResNet-50 (ordinary batch norm)."""
    small = (64, 64, 3)  # the counts do not depend on the image size
    assert _trainable(detr(small, num_classes=2)) == 41_501_895
    assert _trainable(detr(small, num_classes=2, backbone="resnet101")) == 60_441_799
    assert _trainable(detr(small, num_classes=91)) == 41_501_895 + 89 * 257
    assert _trainable(create_model("detr_demo", input_shape=small)) == 41_459_616
    layout = full_size_layout("hf4:DetrForObjectDetection")
    buffers = ("running_mean", "running_var")
    frozen = sum(math.prod(s) for n, s in layout.items() if "conv_encoder" in n and
                 (n.rsplit(".", 2)[-2].startswith("bn") or ".downsample.1." in n))
    assert sum(math.prod(s) for n, s in layout.items()) - frozen == 41_501_895
    assert all(not n.endswith(buffers) or "conv_encoder" in n for n in layout)


@pytest.mark.parametrize("folder", [HF5, HF4], ids=["transformers5_hf_resnet", "transformers4_timm"])
def test_reproduces_the_reference_outputs(folder):
    io = np.load(folder / "reference_io.npz")
    model = from_checkpoint(folder, input_shape=(64, 64, 3))
    logits, boxes = model.predict(io["pixel_values_nchw"].transpose(0, 2, 3, 1), verbose=0)
    for ours, name in ((logits, "logits"), (boxes, "pred_boxes")):
        err = float(np.abs(ours - io[name]).max())
        assert err <= ATOL and err <= REL_STD * float(io[name].std()), (name, err)


def test_without_hugging_faces_aux_loss_norm_the_outputs_differ():
    """Negative control: these checkpoints say auxiliary_loss=true, under which HF feeds each
    decoder layer the normed output of the one before; built the paper's way, the outputs miss
    the gate by far."""
    io = np.load(HF4 / "reference_io.npz")
    model = from_checkpoint(HF4, input_shape=(64, 64, 3), hf_aux_norm=False)
    logits = model.predict(io["pixel_values_nchw"].transpose(0, 2, 3, 1), verbose=0)[0]
    assert float(np.abs(logits - io["logits"]).max()) > 0.1 * float(io["logits"].std())


def test_sine_positions_by_hand():
    """DETR's PositionEmbeddingSine, mask all ones, one entry at a time: the first half encodes
    the row y = (h + 1) / H * 2 pi, the second the column; entry k uses 10000^(2 floor(k/2) / (D/2)),
    sine at even k, cosine at odd."""
    height, width, dim = 3, 5, 8
    pos = sine_positions(height, width, dim)
    half = dim // 2
    for h in range(height):
        for w in range(width):
            for k in range(dim):
                coord = (h + 1) / (height + 1e-6) if k < half else (w + 1) / (width + 1e-6)
                j = k % half
                angle = coord * 2 * math.pi / 10000 ** (2 * (j // 2) / half)
                expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
                assert pos[h * width + w, k] == pytest.approx(expected, abs=1e-6)


def test_to_checkpoint_writes_the_reference_back_and_the_full_size_layout(tmp_path):
    model = from_checkpoint(HF4, input_shape=(64, 64, 3))
    folder = to_checkpoint(model, tmp_path / "small")
    assert_same_tensors(read_tensors(folder), read_tensors(HF4))
    again = from_checkpoint(folder, input_shape=(64, 64, 3))
    x = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
    for a, b in zip(model.predict(x, verbose=0), again.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    big = detr((64, 64, 3), num_classes=2)  # facebook/detr-resnet-50's architecture
    written = read_tensors(to_checkpoint(big, tmp_path / "full"))
    assert tensor_shapes(written) == full_size_layout("hf4:DetrForObjectDetection")


def test_bad_requests_are_refused():
    with pytest.raises(ModelFileError, match="has 10 object queries; 20 were asked for"):
        from_checkpoint(HF4, input_shape=(64, 64, 3), num_queries=20)
    with pytest.raises(InputShapeError, match="multiples of the backbone's stride 32"):
        detr((100, 100, 3), num_classes=2)


def test_layers_round_trip_their_config():
    from model_case import layer_config_mismatches

    model = create_model("detr_micro")
    assert not layer_config_mismatches(model)
    logits, boxes = model.outputs
    assert tuple(logits.shape) == (None, 10, 5) and tuple(boxes.shape) == (None, 10, 4)


def test_detr_micro_runs_full_int8_in_tflite_micro_within_the_board():
    """No float island: every op int8 in TFLite Micro, op by op as LiteRT's reference kernels
    (the verification path's per-op gate), within the stm32h743 budget."""
    from edgezoo.converters.compress import compress
    from edgezoo.converters.recipe import Recipe
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge import get_profile, verify
    from edgezoo.zoo.data.shapes import make_split

    model = create_model("detr_micro")
    images = make_split(1, 64).x
    result = compress(model, Recipe(target="stm32h743"), calibration=images[:48], micro=True)
    parsed = read_tflite(result.tflite)
    assert {t for types in parsed.op_types().values() for t in types} <= {"INT8", "INT32"}
    assert parsed.float_islands() == []
    report = verify(result.tflite, parsed, get_profile("stm32h743"), images[48:],
                    float_outputs=model.predict(images[48:], verbose=0), task="detection")
    assert report["checks"]["micro_vs_reference_per_op"]["passed"]
    assert report["fits"] and report["arena_bytes"] < 200_000


def _conv_np(x, w, stride, pad):
    """NumPy conv of x (H, W, C) with a PyTorch OIHW kernel, symmetric zero padding."""
    o, i, kh, kw = w.shape
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    h, w_ = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
    out = np.zeros((h, w_, o))
    for a in range(kh):
        for b in range(kw):
            patch = x[a:a + stride * h:stride, b:b + stride * w_:stride]
            out += patch @ w[:, :, a, b].T
    return out


def _bn_np(x, t, name):
    return (x - t[f"{name}.running_mean"]) / np.sqrt(t[f"{name}.running_var"] + 1e-5) \
        * t[f"{name}.weight"] + t[f"{name}.bias"]


def _resnet_np(x, t, stem, block):
    """The backbone in NumPy from checkpoint tensors: ``stem`` (conv, bn) names; ``block(s, b,
    part)`` the names of stage s (1-based) block b's conv{1,2,3} / bn{1,2,3} / down conv, bn."""
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    x = relu(_bn_np(_conv_np(x, t[stem[0] + ".weight"], 2, 3), t, stem[1]))
    x = np.pad(x, ((1, 1), (1, 1), (0, 0)))  # >= 0 after ReLU: zero padding = -inf padding
    x = np.max([x[a:a + 2 * ((x.shape[0] - 3) // 2 + 1):2, b:b + 2 * ((x.shape[1] - 3) // 2 + 1):2]
                for a in range(3) for b in range(3)], axis=0)
    s = 1
    while block(s, 0, "conv1") + ".weight" in t:
        b = 0
        while block(s, b, "conv1") + ".weight" in t:
            stride = 2 if (s > 1 and b == 0) else 1
            y = relu(_bn_np(_conv_np(x, t[block(s, b, "conv1") + ".weight"], 1, 0), t, block(s, b, "bn1")))
            y = relu(_bn_np(_conv_np(y, t[block(s, b, "conv2") + ".weight"], stride, 1), t, block(s, b, "bn2")))
            y = _bn_np(_conv_np(y, t[block(s, b, "conv3") + ".weight"], 1, 0), t, block(s, b, "bn3"))
            if block(s, b, "down_conv") + ".weight" in t:
                x = _bn_np(_conv_np(x, t[block(s, b, "down_conv") + ".weight"], stride, 0), t,
                           block(s, b, "down_bn"))
            x = relu(y + x)
            b += 1
        s += 1
    return x


def _timm(s, b, part):
    base = f"model.backbone.conv_encoder.model.layer{s}.{b}"
    return {"down_conv": f"{base}.downsample.0", "down_bn": f"{base}.downsample.1"}.get(
        part, f"{base}.{part}")


def _hf_resnet(s, b, part):
    base = f"model.backbone.model.encoder.stages.{s - 1}.layers.{b}"
    if part.startswith("down"):
        return f"{base}.shortcut.{'convolution' if part == 'down_conv' else 'normalization'}"
    j = int(part[-1]) - 1
    return f"{base}.layer.{j}.{'convolution' if part.startswith('conv') else 'normalization'}"


@pytest.mark.parametrize("folder, stem, block", [
    (HF4, ("model.backbone.conv_encoder.model.conv1", "model.backbone.conv_encoder.model.bn1"), _timm),
    (HF5, ("model.backbone.model.embedder.embedder.convolution",
           "model.backbone.model.embedder.embedder.normalization"), _hf_resnet),
], ids=["timm", "hf_resnet"])
def test_backbone_against_numpy(folder, stem, block):
    """The reference checkpoints' outputs hardly depend on the image (random weights shrink the
    backbone's features), so the backbone mapping is checked on its own: its last feature map
    against a NumPy ResNet computed from the checkpoint's tensors."""
    import tf_keras as keras

    from edgezoo.zoo.checkpoints import read_checkpoint

    _, tensors = read_checkpoint(folder)
    x = np.load(folder / "reference_io.npz")["pixel_values_nchw"].transpose(0, 2, 3, 1)[:1]
    model = from_checkpoint(folder, input_shape=(64, 64, 3))
    last = [l.name for l in model.layers if l.name.startswith("backbone_s") and l.name.endswith("_out")][-1]
    ours = keras.Model(model.input, model.get_layer(last).output).predict(x, verbose=0)[0]
    expected = _resnet_np(x[0].astype(np.float64), tensors, stem, block)
    assert ours.shape == expected.shape and expected.std() > 0
    np.testing.assert_allclose(ours, expected, atol=1e-4 * np.abs(expected).max())


def test_detr_micro_graph_checks(tmp_path):
    """The shared graph checks (config and .keras round trips, batch independence, float TFLite)."""
    from model_case import assert_graph_checks, run_graph_checks

    check = run_graph_checks(create_model("detr_micro"), tmp_path, x=_images(4))
    assert_graph_checks(check, ((4, 10, 5), (4, 10, 4)))


def _images(n):
    from edgezoo.zoo.data.shapes import make_split

    return make_split(5, n).x
