"""Recipes as data, checked before any work; distillation; calibration checks; reconversion."""
import json

import numpy as np
import pytest
import tf_keras as keras

from edgezoo.converters.calibration import CalibrationWarning, check_calibration
from edgezoo.converters.compress import compress
from edgezoo.converters.distill import SoftTargetLoss, distill
from edgezoo.converters.finetune import FinetuneData
from edgezoo.converters.recipe import Recipe
from edgezoo.base.errors import DataError, RecipeError


def small_cnn(name="cnn", width=8, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(10)(x), name=name)


@pytest.fixture(scope="module")
def teacher(digits8):
    from edgezoo.converters.finetune import finetune

    model = small_cnn("teacher", width=16)
    finetune(model, FinetuneData.from_dataset(digits8), epochs=15, learning_rate=3e-3)
    return model


@pytest.mark.parametrize("fields, message", [
    ({"prune": 0.3, "prune_2of4": True}, "2:4 structured sparsity is exactly 50 % but prune=0.3"),
    ({"prune": 1.2}, "prune sparsity must be between 0 and 1"),
    ({"qat": True, "quantize": "float16"}, "quantization-aware training trains for int8"),
    ({"lottery_rounds": 3}, "lottery-ticket rounds need a pruning sparsity"),
    ({"lottery_rounds": 2, "prune_2of4": True}, "lottery-ticket pruning is unstructured"),
    ({"cluster": 1}, "cluster count must be between 2 and 256"),
    ({"cluster": 8, "finetune_epochs": 0}, "cluster fine-tune the model, but finetune_epochs is 0"),
    ({"prune_schedule": "cubic"}, "unknown prune schedule 'cubic'"),
    ({"quantize": "int4"}, "unknown quantization 'int4'"),
])
def test_contradictory_recipes_are_refused(fields, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace("+", r"\+")):
        Recipe(**fields)


@pytest.mark.parametrize("text, message", [
    ('{"prune": 0.5, "clusters": 8}', r"unknown recipe keys \['clusters'\]"),
    ('{"cluster": "eight"}', "recipe key 'cluster' must be int, got 'eight'"),
    ('{"qat": 1}', "recipe key 'qat' must be bool, got 1"),
    ('[1, 2]', "a recipe is a JSON object of steps, got list"),
    ('{"prune": ', "is not valid JSON"),
])
def test_recipe_files_are_checked(tmp_path, text, message):
    path = tmp_path / "recipe.json"
    path.write_text(text)
    with pytest.raises(RecipeError, match=message):
        Recipe.from_file(path)


def test_recipe_round_trips_through_json_and_orders_steps(tmp_path):
    recipe = Recipe(prune=0.5, cluster=8, qat=True, target="nrf52840", seed=3)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe.as_dict()))
    assert Recipe.from_file(path) == recipe
    assert recipe.steps() == ["prune", "cluster", "qat", "quantize:int8", "micro_compression"]
    assert Recipe(prune_2of4=True).sparsity == 0.5
    assert Recipe(distill="self").steps() == ["distill", "quantize:int8"]
    assert Recipe(distill="self", cluster=4).steps()[0] == "cluster"  # the teacher trains it


def test_target_refusals():
    with pytest.raises(RecipeError, match="XNNPACK pruning policy .* TFLite Micro target"):
        Recipe(prune=0.5, prune_policy="xnnpack").check_target(micro=True)
    with pytest.raises(RecipeError, match="--quantize dynamic cannot run on a microcontroller"):
        Recipe(quantize="dynamic").check_target(micro=True)
    Recipe(prune=0.5, prune_policy="xnnpack").check_target(micro=False)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.dense = keras.layers.Dense(10)

    def call(self, x):
        return self.dense(keras.layers.Flatten()(x))


def test_bad_inputs_fail_before_any_training(digits8, teacher):
    data = FinetuneData.from_dataset(digits8)
    sub = Subclassed()
    sub(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(RecipeError, match=r"prune: model 'subclassed' \(Subclassed\) is a subclassed Keras model whose layers TFMOT cannot see"):
        compress(sub, Recipe(prune=0.5), data)
    with pytest.raises(DataError, match=r"calibration data has shape \(4, 16, 16, 1\); the model "
                                        r"takes \(N, 8, 8, 1\)"):
        compress(small_cnn(), Recipe(), data, calibration=np.zeros((4, 16, 16, 1), np.float32))
    wrong = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    with pytest.raises(RecipeError, match=r"outputs \(3,\) but the student outputs \(10,\)"):
        compress(small_cnn(), Recipe(distill="teacher"), data, teacher=wrong)
    with pytest.raises(RecipeError, match="the data has no labels: add --distill TEACHER"):
        compress(small_cnn(), Recipe(cluster=8), FinetuneData(data.x))


def test_soft_target_loss_matches_kl_divergence():
    t, s = np.array([[2.0, 0.5, -1.0]]), np.array([[0.3, 0.1, 0.2]])
    temp = 3.0
    p = np.exp(t / temp) / np.exp(t / temp).sum()
    q = np.exp(s / temp) / np.exp(s / temp).sum()
    expected = temp ** 2 * np.sum(p * np.log(p / q))
    loss = SoftTargetLoss(temp)
    assert float(loss(t, s)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    probs = np.exp(s) / np.exp(s).sum()
    assert float(SoftTargetLoss(temp, student_probabilities=True)(t, probs)) == pytest.approx(
        expected, rel=1e-4)


def test_distillation_teaches_a_student_without_labels(digits8, teacher):
    x = digits8.train.x
    student = small_cnn("student", width=4, seed=1)
    teacher_top1 = teacher.predict(digits8.test.x, verbose=0).argmax(-1)
    before = (student.predict(digits8.test.x, verbose=0).argmax(-1) == teacher_top1).mean()
    distill(student, teacher, x, temperature=4.0, epochs=15, learning_rate=3e-3)
    after = (student.predict(digits8.test.x, verbose=0).argmax(-1) == teacher_top1).mean()
    assert before < 0.3 and after >= 0.85, (before, after)


def test_calibration_checks():
    shape = (8, 8, 1)
    with pytest.warns(CalibrationWarning, match="every calibration value is the same"):
        check_calibration(np.zeros((64, *shape)), shape)
    with pytest.warns(CalibrationWarning, match="only 5 calibration samples"):
        check_calibration(np.random.default_rng(0).uniform(size=(5, *shape)), shape)
    with pytest.warns(CalibrationWarning, match="only 1 distinct calibration samples out of 40"):
        check_calibration(np.ones((40, *shape)) * np.arange(64).reshape(1, 8, 8, 1), shape)
    with pytest.warns(CalibrationWarning, match=r"span 10% of the input range"):
        check_calibration(np.random.default_rng(0).uniform(0, 0.1, (64, *shape)), shape,
                          reference=np.linspace(0, 1, 64))
    with pytest.raises(DataError, match="NaN or infinite"):
        check_calibration(np.full((64, *shape), np.nan), shape)
    good = np.random.default_rng(0).uniform(size=(64, *shape))
    assert check_calibration(good, shape, reference=good) == []


def test_reconversion_is_byte_identical(digits8, teacher):
    first = compress(teacher, Recipe(), digits8, micro=True)
    second = compress(teacher, Recipe(), digits8, micro=True)
    assert first.tflite == second.tflite
    assert first.report["recipe"]["rewrites"] == ["dense_as_conv1x1"]
    assert first.report["steps"] == {}


def test_quantization_debugger_names_the_worst_layers(digits8, teacher):
    from edgezoo.converters.debugger import quantization_error_summary

    rows = quantization_error_summary(teacher, digits8.train.x, top=3)
    assert len(rows) == 3
    steps = [r["rmse_in_steps"] for r in rows]
    assert steps == sorted(steps, reverse=True) and all(s > 0 for s in steps)
    assert {r["op"] for r in rows} <= {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "RESHAPE",
                                        "QUANTIZE", "DEQUANTIZE"}
