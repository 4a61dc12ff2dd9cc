"""Pruning with TFMOT: sparsity measured per layer in the int8 .tflite that ships.

A small CNN + Dense classifier trained briefly on 8x8 digits is pruned with each
schedule; the zeros are counted in the converted int8 flatbuffer, not only in
Keras. The zoo's attention layers (and PointwiseDense, CrossAttention) must be
pruned, not skipped.
"""
import numpy as np
import pytest
import tf_keras as keras

import edgezoo.converters.pruning as pruning
from edgezoo.converters.finetune import FinetuneData, finetune, steps_per_epoch
from edgezoo.converters.quantize import convert
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.converters.tflite_weights import constant_weights, sparsity_by_layer
from edgezoo.base.errors import RecipeError

EPOCHS = 2


def small_cnn(seed=0, input_shape=(8, 8, 1)):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(10, name="head")(x)
    out = keras.layers.Softmax(name="probs")(x)
    return keras.Model(inp, out, name="small_cnn")


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


def litert_accuracy(tflite, x, y):
    from edgezoo.edge.runners.litert import LiteRTRunner

    out = LiteRTRunner(tflite, read_tflite(tflite), "reference").run(x)
    return float(np.mean(np.argmax(out.reshape(len(x), -1), -1) == y))


@pytest.fixture(scope="module")
def trained(digits8):
    """(float model, its test accuracy, fine-tuning data)."""
    data = FinetuneData.from_dataset(digits8)
    model = small_cnn()
    finetune(model, data, epochs=5, learning_rate=3e-3)
    return model, accuracy(model, digits8.test.x, digits8.test.y), data


def tflite_of(model, digits):
    return convert(model, "int8", digits.train.x[:200], micro=True)


# ----------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("kind", pruning.SCHEDULES)
@pytest.mark.parametrize("steps", [1, 7, 34, 68, 250])
def test_schedule_is_derived_from_the_run_length(kind, steps):
    schedule = pruning.pruning_schedule(kind, 0.8, steps)
    f, begin, end = schedule.frequency, schedule.begin_step, schedule.end_step
    assert 1 <= f <= steps and begin == 0
    assert (end - begin) % f == 0 and begin < end <= max(1, int(0.7 * steps))
    # The last mask update (TFMOT counts steps 1..steps) is at exactly the target sparsity.
    update, sparsity = schedule(end)
    assert bool(update) and float(sparsity) == pytest.approx(0.8)
    updates = [s for s in range(1, steps + 1) if bool(schedule(s)[0])]
    assert updates[-1] == end and len(updates) == (end - begin) // f <= 10
    assert not any(bool(schedule(s)[0]) for s in range(end + 1, steps + 1))


def test_tfmot_default_frequency_prunes_nothing_on_a_short_run(trained):
    """The trap: TFMOT's default frequency=100 never updates a mask in 68 steps.

    ``prune`` on the same run length reaches the target (the schedule tests above,
    and every test below, measure it).
    """
    import tensorflow_model_optimization as tfmot
    from edgezoo.converters.finetune import classification_loss

    model, _, data = trained
    steps = EPOCHS * steps_per_epoch(len(data.x), 32)
    assert steps < 100
    default = tfmot.sparsity.keras.ConstantSparsity(0.5, begin_step=0)
    assert default.frequency == 100
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(
        pruning._copy(model), pruning_schedule=default)
    finetune(wrapped, data, epochs=EPOCHS, learning_rate=1e-3, loss=classification_loss(model),
             callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    trap = pruning.keras_sparsity(tfmot.sparsity.keras.strip_pruning(wrapped))
    assert set(trap) == {"conv1", "conv2", "fc1", "head"}
    assert max(trap.values()) < 0.01, trap


# ----------------------------------------------------------------------------- unstructured

@pytest.mark.parametrize("sparsity", [0.5, 0.8])
@pytest.mark.parametrize("kind", pruning.SCHEDULES)
def test_sparsity_per_layer_in_the_int8_tflite(trained, digits8, kind, sparsity):
    model, float_acc, data = trained
    before = [w.copy() for w in model.get_weights()]
    pruned, info = pruning.prune(model, data, sparsity=sparsity, schedule=kind, epochs=EPOCHS,
                                 learning_rate=1e-3)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # untouched
    assert not any("prune_low_magnitude" in l.name for l in pruned.layers)
    assert info["requested"] == {"sparsity": sparsity, "schedule": kind, "two_of_four": False,
                                 "policy": None}
    assert set(info["pruned"]) == {"conv1", "conv2", "fc1", "head"}
    assert info["not_pruned"] == {}
    steps = EPOCHS * steps_per_epoch(len(data.x), 32)
    assert info["schedule"]["steps"] == steps and info["schedule"]["frequency"] <= steps
    assert info["schedule"]["end_step"] < steps

    tflite = tflite_of(pruned, digits8)
    measured = sparsity_by_layer(tflite)
    assert set(info["pruned"]) <= set(measured), measured
    for layer in info["pruned"]:
        assert measured[layer] == pytest.approx(sparsity, abs=0.02), (layer, measured)
    # Accuracy after pruning, Keras float and int8 in LiteRT, against the float model's.
    bound = 0.03 if sparsity == 0.5 else 0.05
    acc = accuracy(pruned, digits8.test.x, digits8.test.y)
    int8_acc = litert_accuracy(tflite, digits8.test.x, digits8.test.y)
    assert acc >= float_acc - bound, (acc, float_acc)
    assert int8_acc >= float_acc - bound - 0.01, (int8_acc, float_acc)


# ----------------------------------------------------------------------------- 2:4

def test_two_of_four_in_every_group_of_four_input_channels(trained, digits8):
    model, float_acc, data = trained
    pruned, info = pruning.prune(model, data, two_of_four=True, epochs=EPOCHS, learning_rate=1e-3)
    assert info["requested"]["sparsity"] == 0.5
    assert set(info["pruned"]) == {"conv2", "fc1", "head"}
    assert "groups of 4" in info["not_pruned"]["conv1"]  # 1 input channel
    checked = set()
    for w in constant_weights(tflite_of(pruned, digits8)):
        name = w.layer
        if name not in info["pruned"]:
            continue
        assert w.values.shape[-1] % 4 == 0  # TFLite keeps the input channel last
        zeros = np.sum(w.values.reshape(-1, 4) == 0, axis=1)
        assert zeros.min() >= 2, (name, zeros.min())
        assert w.sparsity == pytest.approx(0.5, abs=0.02)
        checked.add(name)
    assert checked == {"conv2", "fc1", "head"}
    assert accuracy(pruned, digits8.test.x, digits8.test.y) >= float_acc - 0.05


# ----------------------------------------------------------------------------- zoo layers

@pytest.mark.slow  # about a minute on 2 shared cores: tracing and converting the ViT
def test_vit_micro_attention_projections_are_pruned(digits16):
    """Per projection in Keras (the .tflite names all four tensors after the attention layer)."""
    from edgezoo.zoo import create_model

    model = create_model("vit_micro")
    data = FinetuneData(digits16.train.x[:384], digits16.train.y[:384])
    pruned, info = pruning.prune(model, data, sparsity=0.5, epochs=1, learning_rate=1e-3)
    attention = [l for l in pruned.layers if type(l).__name__ == "MultiHeadSelfAttention"]
    assert len(attention) == 4
    for layer in attention:
        assert layer.name in info["pruned"]
        for proj in (layer.query, layer.key, layer.value, layer.out):
            assert np.mean(proj.kernel.numpy() == 0) == pytest.approx(0.5, abs=1e-3)
    kernels = {l.name for l in pruned.layers if l.weights} - set(info["not_pruned"])
    assert kernels == set(info["pruned"])
    assert "not a kernel" in info["not_pruned"]["pos_embed"]
    assert "LayerNormalization" in info["not_pruned"]["block0_norm1"]

    tensors = constant_weights(convert(pruned, "int8", digits16.train.x[:50], micro=True))
    per_layer = {}
    for w in tensors:
        per_layer.setdefault(w.layer, []).append(w.sparsity)
    for layer in attention:
        assert len(per_layer[layer.name]) == 4  # query, key, value, out
        for s in per_layer[layer.name]:
            assert s == pytest.approx(0.5, abs=0.02)


def test_zoo_layers_are_pruned_and_round_trip(digits8, tmp_path):
    """MultiHeadSelfAttention, CrossAttention (their q/k/v/out kernels) and PointwiseDense.

    Measured per projection in Keras, and per weight tensor in the .tflite.
    """
    from edgezoo.zoo.layers import MultiHeadSelfAttention, PointwiseDense
    from edgezoo.zoo.perceiver.layers import CrossAttention

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    tokens = keras.layers.Reshape((8, 8), name="rows")(inp)
    q = PointwiseDense(16, name="query_tokens")(tokens)
    x = CrossAttention(num_heads=2, name="xattn")([q, tokens])
    x = MultiHeadSelfAttention(num_heads=2, name="selfattn")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    out = keras.layers.Dense(10, name="head")(x)
    model = keras.Model(inp, out)
    data = FinetuneData(digits8.train.x[:256], digits8.train.y[:256])
    pruned, info = pruning.prune(model, data, sparsity=0.75, epochs=1, learning_rate=1e-3)
    assert set(info["pruned"]) == {"query_tokens", "xattn", "selfattn", "head"}
    for name in ("xattn", "selfattn"):
        layer = pruned.get_layer(name)
        for proj in (layer.query, layer.key, layer.value, layer.out):
            assert np.mean(proj.kernel.numpy() == 0) == pytest.approx(0.75, abs=1e-3)
    assert np.mean(pruned.get_layer("query_tokens").kernel.numpy() == 0) == pytest.approx(0.75)
    # In the .tflite the tensors' layer names are ambiguous here (a projection can be named
    # after its neighbour), so count: 1 + 4 + 4 + 1 weight tensors, every one 75 % zeros.
    tensors = constant_weights(convert(pruned, "int8", digits8.train.x[:50], micro=True))
    assert len(tensors) == 10
    assert [w.sparsity for w in tensors] == pytest.approx([0.75] * 10, abs=0.02)

    path = tmp_path / "pruned.keras"
    pruned.save(path)
    loaded = keras.models.load_model(path)
    for a, b in zip(pruned.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert pruning.keras_sparsity(loaded) == info["pruned"]
    for name in ("query_tokens", "xattn", "selfattn"):
        config = pruned.get_layer(name).get_config()
        assert type(pruned.get_layer(name)).from_config(config).get_config() == config


def test_a_shared_layer_counts_one_tfmot_step_per_call(digits8):
    """A layer called twice per batch (Perceiver's repeated blocks) advances TFMOT's step twice."""
    schedule = pruning.pruning_schedule("polynomial", 0.5, 34)
    doubled = pruning._scaled(schedule, 2)
    assert (doubled.begin_step, doubled.end_step, doubled.frequency) == (
        2 * schedule.begin_step, 2 * schedule.end_step, 2 * schedule.frequency)

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten(name="flatten")(inp)
    shared = keras.layers.Dense(64, activation="relu", name="shared")
    out = keras.layers.Dense(10, name="head")(shared(shared(x)))
    data = FinetuneData(digits8.train.x[:128], digits8.train.y[:128])
    pruned, info = pruning.prune(keras.Model(inp, out), data, sparsity=0.5, epochs=2,
                                 learning_rate=1e-3)
    assert info["pruned"] == {"shared": 0.5, "head": 0.5}


# ----------------------------------------------------------------------------- lottery ticket

def test_lottery_ticket_rewinds_and_keeps_pruned_weights_zero(digits8):
    data = FinetuneData(digits8.train.x[:512], digits8.train.y[:512])
    init = small_cnn(seed=1)
    train = dict(batch_size=32, learning_rate=2e-3, seed=3)
    # Rewind point, computed independently: the same seeded run stopped after 1 epoch.
    reference = pruning._copy(init)
    finetune(reference, data, epochs=1, **train)
    rewind = {w.name: w.numpy() for w in reference.weights}
    starts = []

    def record(r, model, masks):
        starts.append((r, {w.name: w.numpy() for w in model.weights}, masks))

    model, info = pruning.lottery_ticket(init, data, sparsity=0.75, rounds=2, epochs_per_round=2,
                                         rewind_epoch=1, on_round_start=record, **train)
    assert [r for r, _, _ in starts] == [1, 2]
    prunable = {w.name for l in model.layers for w in pruning._prunable_weights(l)}
    assert prunable == set(starts[0][2])
    for _, weights, masks in starts:
        for name, value in weights.items():
            expected = rewind[name] * masks[name] if name in masks else rewind[name]
            np.testing.assert_allclose(value, expected, atol=1e-6, err_msg=name)
    first, second = starts[0][2], starts[1][2]
    for name in first:  # masks only shrink
        assert np.all(second[name] <= first[name])
        assert np.mean(first[name] == 0) == pytest.approx(0.5, abs=0.01)
        assert np.mean(second[name] == 0) == pytest.approx(0.75, abs=0.01)

    assert [round(r["target"], 6) for r in info["rounds"]] == [0.5, 0.75]
    for r in info["rounds"]:
        for layer, s in r["sparsity"].items():
            assert s == pytest.approx(r["target"], abs=0.01), (r["round"], layer)
    final = {w.name: w.numpy() for w in model.weights}
    for name, mask in second.items():
        assert np.all(final[name][mask == 0] == 0.0), name  # exactly zero
    assert info["pruned"] == pytest.approx({"conv1": 0.75, "conv2": 0.75, "fc1": 0.75,
                                            "head": 0.75}, abs=0.01)
    measured = sparsity_by_layer(tflite_of(model, digits8))
    for layer in ("conv1", "conv2", "fc1", "head"):
        assert measured[layer] == pytest.approx(0.75, abs=0.02), measured
    assert accuracy(model, digits8.test.x, digits8.test.y) > 0.8


# ----------------------------------------------------------------------------- XNNPACK policy

def xnnpack_cnn():
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.ZeroPadding2D(1, name="pad")(inp)
    # Activations fused into the convolutions, so the .tflite names each op after its conv.
    x = keras.layers.Conv2D(8, 3, strides=2, padding="valid", activation="relu", name="stem")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu", name="expand")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    x = keras.layers.Conv2D(16, 1, name="project")(x)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inp, keras.layers.Dense(10, name="head")(x))


def test_xnnpack_policy_prunes_only_the_1x1_convolutions(digits16):
    x = np.repeat(digits16.train.x[:256], 3, axis=-1)
    data = FinetuneData(x, digits16.train.y[:256])
    pruned, info = pruning.prune(xnnpack_cnn(), data, sparsity=0.75, policy="xnnpack", epochs=2,
                                 learning_rate=1e-3)
    assert set(info["pruned"]) == {"expand", "project"}
    assert "1x1 Conv2D" in info["not_pruned"]["stem"] and "1x1" in info["not_pruned"]["head"]
    assert "depthwise" in info["not_pruned"]["dw"]
    measured = sparsity_by_layer(convert(pruned, "int8", x[:50], micro=True))
    assert measured["expand"] == pytest.approx(0.75, abs=0.02)
    assert measured["project"] == pytest.approx(0.75, abs=0.02)
    assert measured["stem"] < 0.1


def test_xnnpack_policy_refuses_a_model_outside_its_pattern(trained):
    model, _, data = trained
    with pytest.raises(RecipeError, match="does not fit the xnnpack pruning policy: Could not find"):
        pruning.prune(model, data, sparsity=0.5, policy="xnnpack", epochs=1)


# ----------------------------------------------------------------------------- contradictions

class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.fc = keras.layers.Dense(10)

    def call(self, x):
        return self.fc(keras.layers.Flatten()(x))


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the recipe was checked")

    monkeypatch.setattr(pruning, "finetune", refuse)


@pytest.mark.parametrize("kwargs, message", [
    (dict(two_of_four=True, sparsity=0.8), "2:4 is 50 % sparsity"),
    (dict(sparsity=None), "needs a target sparsity"),
    (dict(sparsity=0.0), r"sparsity must lie in \(0, 1\)"),
    (dict(sparsity=1.0), r"sparsity must lie in \(0, 1\)"),
    (dict(sparsity=-0.2), r"sparsity must lie in \(0, 1\)"),
    (dict(sparsity=0.5, schedule="cubic"), "unknown pruning schedule 'cubic'"),
    (dict(sparsity=0.5, policy="gpu"), "unknown pruning policy 'gpu'"),
    (dict(sparsity=0.5, epochs=0), "at least 1 epoch"),
])
def test_contradictions_are_refused_before_training(no_training, digits8, kwargs, message):
    data = FinetuneData(digits8.train.x[:64], digits8.train.y[:64])
    with pytest.raises(RecipeError, match=message):
        pruning.prune(small_cnn(), data, **{"epochs": 1, **kwargs})


def test_subclassed_model_and_unlabelled_data_are_refused(no_training, digits8):
    data = FinetuneData(digits8.train.x[:64], digits8.train.y[:64])
    sub = Subclassed()
    sub(digits8.train.x[:1])
    with pytest.raises(RecipeError, match=r"pruning: model .* is a subclassed Keras model whose layers TFMOT cannot see; rebuild it as a functional"):
        pruning.prune(sub, data, sparsity=0.5, epochs=1)
    with pytest.raises(RecipeError, match="no labels or targets"):
        pruning.prune(small_cnn(), FinetuneData(digits8.train.x[:64]), sparsity=0.5, epochs=1)
    with pytest.raises(RecipeError, match=r"pruning: model .* is a subclassed Keras model whose layers TFMOT cannot see; rebuild it as a functional"):
        pruning.lottery_ticket(sub, data, sparsity=0.5, epochs_per_round=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rewind_epoch=1, rewind_step=3), "not both"),
    (dict(rewind_epoch=2), "outside the first training"),
    (dict(rewind_step=-1), "outside the first training"),
    (dict(rounds=0), "at least 1 pruning round"),
    (dict(sparsity=1.2), r"sparsity must lie in \(0, 1\)"),
])
def test_lottery_ticket_contradictions(no_training, digits8, kwargs, message):
    data = FinetuneData(digits8.train.x[:64], digits8.train.y[:64])
    with pytest.raises(RecipeError, match=message):
        pruning.lottery_ticket(small_cnn(), data, **{"sparsity": 0.5, "epochs_per_round": 2,
                                                     **kwargs})


def test_schedule_contradictions():
    with pytest.raises(RecipeError, match="unknown pruning schedule 'step'"):
        pruning.pruning_schedule("step", 0.5, 100)
    with pytest.raises(RecipeError, match="begins at step 100 but fine-tuning has only 100"):
        pruning.pruning_schedule("constant", 0.5, 100, begin_step=100)
    with pytest.raises(RecipeError, match=r"sparsity must lie in \(0, 1\)"):
        pruning.pruning_schedule("polynomial", 1.5, 100)
