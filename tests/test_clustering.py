"""Clustering with TFMOT: K values per output channel survive int8 conversion, accuracy holds."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.converters.clustering import cluster
from edgezoo.converters.finetune import FinetuneData, finetune
from edgezoo.converters.quantize import convert
from edgezoo.converters.tflite_weights import constant_weights, max_unique_per_channel, sparsity_by_layer
from edgezoo.base.errors import RecipeError


def small_cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="fc")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def accuracy(model, split):
    return float((model.predict(split.x, verbose=0).argmax(1) == split.y).mean())


def tflite_accuracy(data, split):
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.runners.litert import LiteRTRunner

    return float((LiteRTRunner(data, read_tflite(data), "reference").run(split.x).argmax(1)
                  == split.y).mean())


@pytest.fixture(scope="module")
def trained(digits8):
    model = small_cnn()
    finetune(model, FinetuneData(digits8.train.x, digits8.train.y), epochs=40, learning_rate=3e-3)
    return model


@pytest.fixture(scope="module")
def clustered8(trained, digits8):
    before = [w.copy() for w in trained.get_weights()]
    model, info = cluster(trained, FinetuneData(digits8.train.x, digits8.train.y), clusters=8,
                          epochs=4, learning_rate=1e-3)
    assert all(np.array_equal(a, b) for a, b in zip(before, trained.get_weights())), \
        "clustering must not train the caller's model"
    return model, info, convert(model, "int8", digits8.train.x[:200], micro=True)


def test_clustered_int8_has_at_most_k_values_per_channel(clustered8):
    model, info, data = clustered8
    assert info["clustered_layers"] == ["conv1", "conv2", "fc"]
    assert "DepthwiseConv2D" in info["unclustered_layers"]["dw"]
    assert not any(isinstance(layer, keras.layers.Wrapper) for layer in model.layers)  # stripped
    assert info["max_unique_per_channel"] == {"conv1": 8, "conv2": 8, "fc": 8}
    unique = max_unique_per_channel(data)
    # conv2 + bn + relu fuse into one CONV_2D named after the ReLU; batch-norm folding scales
    # whole channels, so the count survives.
    for layer in ("conv1", "relu2", "fc"):
        assert 2 <= unique[layer] <= 8, (layer, unique)
    assert unique["dw"] > 8  # the unclustered layer keeps its spread of int8 values


def test_clustered_int8_accuracy_close_to_float(trained, clustered8, digits8):
    model, _, data = clustered8
    float_acc = accuracy(trained, digits8.test)
    int8_acc = tflite_accuracy(data, digits8.test)
    assert float_acc >= 0.85
    assert int8_acc >= float_acc - 0.04, (float_acc, accuracy(model, digits8.test), int8_acc)


def test_four_clusters_and_linear_init(trained, digits8):
    model, info = cluster(trained, FinetuneData(digits8.train.x, digits8.train.y), clusters=4,
                          epochs=3, learning_rate=1e-3, centroid_init="linear")
    data = convert(model, "int8", digits8.train.x[:200], micro=True)
    unique = max_unique_per_channel(data)
    assert all(unique[layer] <= 4 for layer in ("conv1", "relu2", "fc")), unique
    assert tflite_accuracy(data, digits8.test) >= accuracy(trained, digits8.test) - 0.06


def test_per_tensor_clustering_bounds_the_whole_kernel(trained, digits8):
    model, info = cluster(trained, FinetuneData(digits8.train.x, digits8.train.y), clusters=8,
                          epochs=1, per_channel=False)
    kernel = model.get_layer("conv2").kernel.numpy()
    assert len(np.unique(kernel)) <= 8
    assert info["max_unique_per_channel"]["conv2"] <= 8


def test_clustering_is_deterministic(trained, digits8):
    data = FinetuneData(digits8.train.x[:100], digits8.train.y[:100])
    a, _ = cluster(trained, data, clusters=8, epochs=1)
    b, _ = cluster(trained, data, clusters=8, epochs=1)
    calib = digits8.train.x[:50]
    assert convert(a, "int8", calib, micro=True) == convert(b, "int8", calib, micro=True)


def test_preserve_sparsity_keeps_zeros(trained, digits8):
    sparse = keras.models.clone_model(trained)
    sparse.set_weights(trained.get_weights())
    rng = np.random.default_rng(0)
    masks = {}
    for name in ("conv1", "conv2", "fc"):
        layer = sparse.get_layer(name)
        kernel = layer.kernel.numpy()
        masks[name] = rng.random(kernel.shape) < 0.5
        kernel[masks[name]] = 0.0
        layer.kernel.assign(kernel)
    data = FinetuneData(digits8.train.x, digits8.train.y)
    kept, _ = cluster(sparse, data, clusters=8, epochs=1, learning_rate=1e-3, preserve_sparsity=True)
    lost, _ = cluster(sparse, data, clusters=8, epochs=1, learning_rate=1e-3)
    for name, mask in masks.items():
        assert np.all(kept.get_layer(name).kernel.numpy()[mask] == 0.0), name
    assert not all(np.all(lost.get_layer(n).kernel.numpy()[m] == 0.0) for n, m in masks.items())
    tflite = convert(kept, "int8", digits8.train.x[:100], micro=True)
    sparsity = sparsity_by_layer(tflite)
    # Every zeroed weight stays zero through conversion (the converter names conv2 by its fused ReLU).
    assert sparsity["conv1"] >= masks["conv1"].mean(), (sparsity, masks["conv1"].mean())
    assert sparsity["relu2"] >= masks["conv2"].mean(), (sparsity, masks["conv2"].mean())
    assert all(int(w.unique_per_channel().max()) <= 8 for w in constant_weights(tflite)
               if w.layer in ("conv1", "relu2"))


def test_subclassed_model_is_refused_before_training(digits8):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = keras.layers.Flatten()
            self.fc = keras.layers.Dense(10)

        def call(self, x):
            return self.fc(self.flat(x))

    net = Net()
    net(digits8.train.x[:1])
    with pytest.raises(RecipeError, match=r"clustering: model .* is a subclassed Keras model whose layers TFMOT cannot see; rebuild it as a functional \(or Sequential\) model"):
        cluster(net, FinetuneData(digits8.train.x, digits8.train.y), clusters=8, epochs=1)


@pytest.mark.parametrize("clusters", [1, 0, -3, 2.5])
def test_too_few_clusters_is_refused(trained, digits8, clusters):
    with pytest.raises(RecipeError, match=r"clusters=.*at least 2"):
        cluster(trained, FinetuneData(digits8.train.x, digits8.train.y), clusters=clusters, epochs=1)


def test_preserve_sparsity_needs_three_clusters(trained, digits8):
    with pytest.raises(RecipeError, match="at least 3 .*zero"):
        cluster(trained, FinetuneData(digits8.train.x, digits8.train.y), clusters=2, epochs=1,
                preserve_sparsity=True)


def test_unlabelled_data_is_refused(trained, digits8):
    with pytest.raises(RecipeError, match="labels or a teacher's soft targets"):
        cluster(trained, FinetuneData(digits8.train.x), clusters=8, epochs=1)


def test_model_with_only_unclusterable_layers_is_refused(digits8):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.DepthwiseConv2D(3, name="dw")(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    with pytest.raises(RecipeError, match="no layer TFMOT can cluster.*dw"):
        cluster(model, FinetuneData(digits8.train.x, digits8.train.y), clusters=8, epochs=1)


def test_clusters_per_layer(trained, digits8):
    model, info = cluster(trained, FinetuneData(digits8.train.x, digits8.train.y),
                          clusters={None: 8, "conv2": 4, "fc": None}, epochs=1)
    assert info["clusters"] == {"conv1": 8, "conv2": 4}
    assert info["unclustered_layers"]["fc"].startswith("not asked for")
    assert info["max_unique_per_channel"] == {"conv1": 8, "conv2": 4}
    assert len(np.unique(model.get_layer("fc").kernel.numpy())) > 8


def test_clusters_naming_a_missing_layer_is_refused(trained, digits8):
    with pytest.raises(RecipeError, match=r"names layers \['nope'\]"):
        cluster(trained, FinetuneData(digits8.train.x, digits8.train.y), clusters={"nope": 8}, epochs=1)
