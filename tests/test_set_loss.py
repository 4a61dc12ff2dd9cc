"""The set loss: its terms against NumPy on hand-built matches, and DETR's loss falling on a
fixed batch."""
import numpy as np
import pytest
import tensorflow as tf

from edgezoo.zoo.boxes import generalized_iou
from edgezoo.zoo.set_loss import DEFORMABLE_DETR_LOSS, DETR_LOSS, giou_tf, set_loss


def test_giou_tf_matches_numpy():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0.2, 0.8, (50, 2)), rng.uniform(0.05, 0.4, (50, 2))], 1)
    b = np.concatenate([rng.uniform(0.2, 0.8, (50, 2)), rng.uniform(0.05, 0.4, (50, 2))], 1)
    np.testing.assert_allclose(giou_tf(tf.constant(a, tf.float32), tf.constant(b, tf.float32)),
                               generalized_iou(a, b), atol=1e-5)


def _case():
    logits = np.array([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 3.0]]], np.float32)
    boxes = np.array([[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2]]],
                     np.float32)
    targets = [np.array([[0, 0.5, 0.5, 0.2, 0.3], [1, 0.3, 0.35, 0.1, 0.1]], np.float32)]
    matches = [(np.array([0, 1]), np.array([0, 1]))]
    return logits, boxes, targets, matches


def test_detr_loss_terms_by_hand():
    logits, boxes, targets, matches = _case()
    total, parts = set_loss(tf.constant(logits), tf.constant(boxes), targets, DETR_LOSS, matches)
    log_softmax = logits[0] - np.log(np.exp(logits[0]).sum(-1, keepdims=True))
    ce = -np.array([log_softmax[0, 0], log_softmax[1, 1], log_softmax[2, 2]])
    w = np.array([1.0, 1.0, 0.1])  # the unmatched query's target is no-object, weighted 0.1
    assert float(parts["class"]) == pytest.approx((w * ce).sum() / w.sum(), rel=1e-5)
    l1 = (np.abs(boxes[0, 0] - targets[0][0, 1:]).sum() + np.abs(boxes[0, 1] - targets[0][1, 1:]).sum()) / 2
    assert float(parts["l1"]) == pytest.approx(l1, rel=1e-5)
    giou = generalized_iou(boxes[0, :2], targets[0][:, 1:])
    assert float(parts["giou"]) == pytest.approx((1 - giou).sum() / 2, rel=1e-5)
    assert float(total) == pytest.approx(float(parts["class"]) + 5 * l1 + 2 * (1 - giou).sum() / 2,
                                         rel=1e-5)


def test_focal_loss_by_hand():
    logits, boxes, targets, matches = _case()
    logits = logits[..., :2]  # sigmoid scoring: no no-object column
    _, parts = set_loss(tf.constant(logits), tf.constant(boxes), targets, DEFORMABLE_DETR_LOSS,
                        matches)
    onehot = np.zeros((3, 2))
    onehot[0, 0] = onehot[1, 1] = 1
    p = 1 / (1 + np.exp(-logits[0]))
    ce = -(onehot * np.log(p) + (1 - onehot) * np.log(1 - p))
    p_t = p * onehot + (1 - p) * (1 - onehot)
    alpha = 0.25 * onehot + 0.75 * (1 - onehot)
    assert float(parts["class"]) == pytest.approx((alpha * ce * (1 - p_t) ** 2).sum() / 2, rel=1e-5)


def test_compiled_matching_equals_the_eager_loss_with_padded_targets():
    """The training step's path (targets padded to one shape, the Hungarian matcher as a graph
    op) gives each image's loss terms as the matcher on its own list does, for images with
    different object counts and none."""
    from edgezoo.zoo.set_loss import dense_set_loss, match_batch, match_in_graph, pad_targets
    from edgezoo.zoo.set_matching import match

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 6, 4)).astype(np.float32)
    boxes = np.concatenate([rng.uniform(0.2, 0.8, (3, 6, 2)), rng.uniform(0.05, 0.3, (3, 6, 2))],
                           -1).astype(np.float32)
    targets = [np.array([[0, 0.5, 0.5, 0.2, 0.3], [2, 0.3, 0.35, 0.1, 0.1], [1, .7, .6, .2, .2]],
                        np.float32), np.zeros((0, 5), np.float32),
               np.array([[1, 0.4, 0.6, 0.3, 0.2]], np.float32)]
    for spec in (DETR_LOSS, DEFORMABLE_DETR_LOSS):
        width = 4  # DETR: 3 classes + no-object; Deformable DETR: 4 sigmoid classes
        padded, mask = pad_targets(targets, slots=5)  # more slots than any image has
        step = tf.function(lambda lg, bx: dense_set_loss(
            lg, bx, padded, mask, match_in_graph(lg, bx, padded, mask, spec.costs), spec))
        total, parts = step(tf.constant(logits[..., :width]), tf.constant(boxes))
        matches = match_batch(logits[..., :width], boxes, targets, spec.costs)
        assert all(len(q) == len(t) for q, t in zip((m[0] for m in matches), targets))
        # the same matches by hand (NumPy): the class-0 term and both box terms
        chosen = np.concatenate([boxes[i, q] for i, (q, _) in enumerate(matches)])
        goal = np.concatenate([targets[i][t, 1:] for i, (_, t) in enumerate(matches)])
        assert float(parts["l1"]) == pytest.approx(np.abs(chosen - goal).sum() / 4, rel=1e-5)
        assert float(parts["giou"]) == pytest.approx(
            (1 - generalized_iou(chosen, goal)).sum() / 4, rel=1e-5)
        eager, _ = set_loss(tf.constant(logits[..., :width]), tf.constant(boxes), targets, spec)
        assert float(total) == pytest.approx(float(eager), rel=1e-5)
        # negative control: a different matching changes the loss
        q0, t0 = match(logits[0, :, :width], boxes[0], targets[0][:, 0].astype(int),
                       targets[0][:, 1:], spec.costs)
        wrong = [((q0 + 1) % 6, t0), matches[1], matches[2]]
        other, _ = set_loss(tf.constant(logits[..., :width]), tf.constant(boxes), targets, spec,
                            wrong)
        assert float(other) > float(total)


@pytest.mark.slow  # about 65 s; by default the set loss trains in test_cli_trains_and_evaluates_a_detector
def test_detr_loss_falls_on_a_fixed_batch():
    import tf_keras as keras

    from edgezoo.zoo import create_model
    from edgezoo.zoo.data.shapes import make_split
    from edgezoo.zoo.detr.train import fit_detector
    from edgezoo.zoo.training import deterministic

    deterministic(0)  # the same steps whichever tests ran before in this process
    keras.utils.set_random_seed(0)
    split = make_split(3, 8)
    model = create_model("detr_micro")
    history = fit_detector(model, split, epochs=80, batch_size=8, learning_rate=1e-3)
    assert history[-1] < 0.6 * history[0], history


def test_cli_trains_and_evaluates_a_detector(tmp_path, capsys, monkeypatch):
    """`edgezoo train detr_micro --data shapes` then `edgezoo eval` (a small shapes set: the
    pipeline, not the accuracy, is under test here)."""
    import json

    from edgezoo.cli import main
    from edgezoo.zoo.data import shapes

    monkeypatch.setattr(shapes, "SPLIT_SIZES", {"train": 32, "val": 16, "test": 16})
    assert main(["train", "detr_micro", "--data", "shapes", "--epochs", "1", "--lr", "1e-3",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1: set loss" in out and "validation mAP" in out
    assert main(["eval", str(tmp_path / "detr_micro.keras"), "--data", "shapes"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 16 and result["runtime"] == "keras"
    assert 0.0 <= result["mAP50"] <= 1.0 and set(result) >= {"mAP", "mAP_small", "mAP_large"}
    assert main(["eval", str(tmp_path / "detr_micro.keras"), "--data", str(tmp_path)]) == 2
    assert "train/, val/ and test/ COCO folders" in capsys.readouterr().err
    # convert and test take the same data: its train images calibrate, its test images measure
    # the detection agreement (a one-epoch model: the verdict may fail, the run must complete)
    code = main(["convert", str(tmp_path / "detr_micro.keras"), "--calib", "shapes",
                 "--target", "stm32h743", "--out", str(tmp_path / "int8")])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    report = json.loads((tmp_path / "int8" / "report.json").read_text())
    assert report["data"]["name"] == "shapes" and report["data"]["test"] == 16, report["data"]
    assert report["data"]["train"] == 32 and report["task"] == "detection"
    origin = report["input_contract"]["origin"]  # the range edgezoo train recorded
    assert origin == "recorded in detr_micro.keras (edgezoo train on shapes)"
    assert report["checks"]["micro_vs_reference_per_op"]["passed"], report["checks"]
    code = main(["test", str(tmp_path / "int8" / "model.tflite"), "--target", "stm32h743",
                 "--float", str(tmp_path / "detr_micro.keras"), "--data", "shapes", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    tested = json.loads(out)
    assert tested["inputs"] == "shapes test split (16 samples)" and tested["task"] == "detection"
    assert tested["checks"]["micro_vs_reference_per_op"]["passed"], tested["checks"]
    # a grayscale classifier cannot take the RGB shapes images: one clear line, before any work
    assert main(["convert", "vit_micro", "--calib", "shapes", "--target", "nrf52840",
                 "--out", str(tmp_path / "gray")]) == 2
    err = capsys.readouterr().err
    assert "shapes holds RGB images (H, W, 3)" in err and not (tmp_path / "gray").exists()
