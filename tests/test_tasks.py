"""Task contracts: each names its tensors, and each agreement measure is checked against a
hand-computed case and fails on a known violation."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.base.errors import DataError, RecipeError, UnknownModelError
from edgezoo.zoo import create_model, model_info
from edgezoo.zoo.tasks import CAUSAL_LM, CLASSIFICATION, DETECTION, ENCODER, TASKS, get_task, task_of
from edgezoo.zoo.boxes import box_iou
from edgezoo.zoo.tasks.measures import masked_cosine


def test_every_task_declares_its_contract():
    assert set(TASKS) == {"classification", "detection", "detection_sigmoid", "causal_lm", "encoder"}
    for task in TASKS.values():
        info = task.describe()
        assert info["input_roles"] and info["output_roles"] and info["agreement_checks"]
        assert info["data_needs"] and info["calibration"] and info["metrics"]
    assert ENCODER.input_roles == ("token_ids", "attention_mask")
    assert "int32" in CAUSAL_LM.calibration or "never quantized" in CAUSAL_LM.calibration
    with pytest.raises(UnknownModelError, match="unknown task 'segmentation'; known: classification"):
        get_task("segmentation")


def test_registry_records_the_task_and_classes_only_where_the_task_has_them():
    assert model_info("vit_micro")["task"] == "classification"
    model = create_model("vit_micro")
    assert task_of(model) is CLASSIFICATION
    spec = CLASSIFICATION.inputs(model)[0]
    assert (spec.dtype, spec.shape, spec.quantized) == ("float32", (16, 16, 1), True)
    from edgezoo.zoo.registry import register_model

    with pytest.raises(ValueError, match="task 'causal_lm' has no classes; drop num_classes"):
        register_model("probe_lm", lambda **k: None, family="x", task="causal_lm", paper="p",
                       arxiv="0", input_shape=(8,), num_classes=10)


def test_hand_computed_measures():
    # two boxes: identical (IoU 1) and shifted by half their width (IoU 1/3)
    a = np.array([[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]])
    b = np.array([[0.5, 0.5, 0.2, 0.2], [0.6, 0.5, 0.2, 0.2]])
    np.testing.assert_allclose(box_iou(a, b), [1.0, 1 / 3], rtol=1e-9)
    h = np.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    g = np.array([[[1.0, 0.0], [1.0, 1.0], [-5.0, 5.0]]])
    # unmasked tokens 0 and 1: cosines 1 and 1/sqrt(2); token 2 (padding) is not counted
    assert masked_cosine(h, g, np.array([[1, 1, 0]])) == pytest.approx((1 + 2 ** -0.5) / 2)


def test_detection_measure_counts_queries_and_fails_on_swapped_boxes():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 6, 3))
    boxes = rng.uniform(0.2, 0.8, (4, 6, 4)) * [1, 1, 0.3, 0.3]
    same = DETECTION.measure([logits, boxes], [logits, boxes], [None])
    assert same["checks"] == {"query_class_agreement": 1.0, "box_iou": pytest.approx(1.0)}
    swapped = DETECTION.measure([logits, boxes], [logits, boxes[:, ::-1]], [None])
    assert swapped["checks"]["box_iou"] < 0.5  # the negative control: boxes on other queries
    # classes shifted by one: every query's arg-max moves, so class agreement is 0
    shifted = DETECTION.measure([logits, boxes], [np.roll(logits, 1, axis=-1), boxes], [None])
    assert shifted["checks"]["query_class_agreement"] == 0.0
    image = keras.Input((8, 8, 3))
    flat = keras.layers.Flatten()(image)
    three = keras.Model(image, [keras.layers.Dense(5)(flat), keras.layers.Dense(3)(flat)])
    with pytest.raises(DataError, match="must end in 4 box coordinates"):
        DETECTION.check_model(three)


def test_sigmoid_detection_compares_each_query_class_or_no_object():
    """Sigmoid scoring has no no-object logit: a query with every probability at or below 0.5 is
    no object on both sides, whatever the arg-max of its near-zero scores; an object query that
    changes class, or becomes no object, disagrees (the negative controls)."""
    from edgezoo.zoo.tasks import get_task

    sigmoid = get_task("detection_sigmoid")
    boxes = np.tile([0.5, 0.5, 0.2, 0.2], (1, 4, 1))
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    float_logits = logit(np.array([[[0.9, 0.1, 0.1], [0.05, 0.1, 0.02], [0.1, 0.3, 0.2],
                                    [0.2, 0.7, 0.1]]]))
    # background queries 1 and 2 change their arg-max, both still below 0.5: they agree
    background = logit(np.array([[[0.9, 0.1, 0.1], [0.12, 0.1, 0.02], [0.1, 0.2, 0.3],
                                  [0.2, 0.7, 0.1]]]))
    assert sigmoid.measure([float_logits, boxes], [background, boxes], [None])["value"] == 1.0
    # query 0 drops below 0.5 (no object), query 3 changes class: 2 of 4 agree
    changed = logit(np.array([[[0.45, 0.1, 0.1], [0.05, 0.1, 0.02], [0.1, 0.3, 0.2],
                               [0.8, 0.7, 0.1]]]))
    assert sigmoid.measure([float_logits, boxes], [changed, boxes], [None])["value"] == 0.5
    from edgezoo.edge.verification import DEFAULT_THRESHOLDS

    assert sigmoid.uninformative([float_logits, boxes * [1, 1, 1, 1.5]], DEFAULT_THRESHOLDS) == []
    nothing = sigmoid.uninformative([logit(np.full((1, 4, 3), 0.1)), boxes], DEFAULT_THRESHOLDS)
    assert any("no query an object" in r for r in nothing)


def test_causal_lm_measure_is_next_token_top1():
    logits = np.zeros((1, 4, 3))
    logits[0, np.arange(4), [0, 1, 2, 0]] = 1.0
    other = logits.copy()
    other[0, 3] = [0, 0, 1]
    assert CAUSAL_LM.measure([logits], [other], [None])["value"] == 0.75


def test_tasks_without_label_losses_say_how_to_train():
    ids = keras.Input((4,), dtype="int32")
    mask = keras.Input((4,), dtype="int32")
    h = keras.layers.Embedding(8, 4)(ids)
    model = keras.Model([ids, mask], h)
    with pytest.raises(RecipeError, match="encoder model cannot be fine-tuned on labels here .*--distill"):
        ENCODER.losses(model)
    with pytest.raises(RecipeError, match="set loss"):
        DETECTION.losses(model)
    with pytest.raises(DataError, match="has 2 inputs; the task expects 1"):
        CLASSIFICATION.inputs(model)
    floats = keras.Model([ids, mask], keras.layers.Dense(2)(h))
    assert ENCODER.check_model(floats)
    image = keras.Input((4,))
    with pytest.raises(DataError, match="must be integer"):
        ENCODER.check_model(keras.Model([image, mask], keras.layers.Dense(2)(image)))
