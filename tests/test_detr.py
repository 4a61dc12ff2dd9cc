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
    report = verify(result.tflite, parsed, get_profile("stm32h743"), images[48:],
                    float_outputs=model.predict(images[48:], verbose=0), task="detection")
    assert report["checks"]["micro_vs_reference_per_op"]["passed"]
    assert report["fits"] and report["arena_bytes"] < 200_000
