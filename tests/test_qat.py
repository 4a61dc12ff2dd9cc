"""Quantization-aware training: int8 on TFLite Micro, the zoo's custom layers, collaborative QAT."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.converters.finetune import FinetuneData, finetune
from edgezoo.converters.qat import check_qat, qat_scope, quantize_aware_train, quantize_model
from edgezoo.converters.quantize import convert
from edgezoo.converters.quantize_configs import LAYER_CONFIGS
from edgezoo.converters.rewrites import apply_micro_rewrites
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.converters.tflite_weights import max_unique_per_channel, sparsity_by_layer
from edgezoo.edge.runners.litert import LiteRTRunner
from edgezoo.edge.runners.micro import MicroRunner
from edgezoo.base.errors import RecipeError
from edgezoo.zoo import create_model
from edgezoo.zoo.data import load_digits

CALIBRATION = 200


def micro_accuracy(data, x, y):
    """(top-1 accuracy in TFLite Micro, raw int8 outputs, parsed model)."""
    parsed = read_tflite(data)
    out = MicroRunner(data, parsed).run(x)
    return float(np.mean(out.reshape(len(out), -1).argmax(1) == y)), out, parsed


def output_range_scale(qat_model):
    """The int8 scale the last layer's trained fake-quant range stands for."""
    last = qat_model.layers[-1]
    lo, hi = (float(v.numpy()) for v in last.weights if v.name.endswith(("output_min:0", "output_max:0")))
    return (hi - lo) / 255.0


def assert_full_int8(parsed):
    assert (parsed.inputs[0].dtype, parsed.outputs[0].dtype) == ("INT8", "INT8")
    floats = [op.op for op in parsed.operators if "FLOAT32" in op.input_types + op.output_types]
    assert not floats, f"float ops left: {floats}"
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(parsed.op_names)


def small_cnn():
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(10, name="head")(x)
    return keras.Model(inputs, x, name="cnn")


@pytest.fixture(scope="module")
def cnn(digits8):
    """A float CNN trained on digits 8x8 (before the TFLite Micro rewrites)."""
    keras.utils.set_random_seed(0)
    model = small_cnn()
    finetune(model, FinetuneData(digits8.train.x, digits8.train.y), epochs=15, learning_rate=1e-2)
    return model


def test_cnn_qat_int8_in_micro_matches_ptq_and_reference_kernels(cnn, digits8):
    model, _ = apply_micro_rewrites(cnn)
    calib, test = digits8.train.x[:CALIBRATION], digits8.test
    ptq_acc, _, _ = micro_accuracy(convert(model, "int8", calib, micro=True), test.x, test.y)
    qat = quantize_aware_train(model, FinetuneData(digits8.train.x, digits8.train.y), epochs=3,
                               learning_rate=1e-3)
    data = convert(qat, "int8", calib, micro=True)
    qat_acc, out, parsed = micro_accuracy(data, test.x, test.y)
    assert_full_int8(parsed)
    print(f"cnn: PTQ int8 (micro) {ptq_acc:.4f}, QAT int8 (micro) {qat_acc:.4f}")
    assert qat_acc >= ptq_acc - 0.02, (qat_acc, ptq_acc)
    assert qat_acc > 0.8
    reference = LiteRTRunner(data, parsed, "reference").run(test.x)
    assert np.abs(out.astype(np.int32) - reference.astype(np.int32)).max() <= 1
    # The converter takes the trained range of the output fake-quant, not a calibrated one.
    assert parsed.outputs[0].scale == pytest.approx(output_range_scale(qat), rel=1e-4)


def vit_qat_against_ptq(digits16, depth, float_epochs, qat_epochs):
    keras.utils.set_random_seed(0)
    model = create_model("vit_micro", depth=depth)
    train = FinetuneData(digits16.train.x, digits16.train.y)
    finetune(model, train, epochs=float_epochs, learning_rate=2e-3)
    test = digits16.test
    float_acc = float(np.mean(model.predict(test.x, verbose=0).argmax(1) == test.y))
    rewritten, applied = apply_micro_rewrites(model)
    assert applied == ["gelu", "dense_as_conv1x1"]
    calib = digits16.train.x[:CALIBRATION]
    ptq_acc, _, _ = micro_accuracy(convert(rewritten, "int8", calib, micro=True), test.x, test.y)
    qat = quantize_aware_train(rewritten, train, epochs=qat_epochs, learning_rate=3e-4)
    configs = {layer.layer.name: layer.quantize_config for layer in qat.layers
               if hasattr(layer, "quantize_config")}
    ours = {type(layer) for layer in rewritten.layers if type(layer) in LAYER_CONFIGS}
    assert {c.__name__ for c in ours} >= {"LayerNormalization", "MultiHeadSelfAttention",
                                          "PointwiseDense", "ClassToken", "PositionEmbedding",
                                          "TokenSelect", "StochasticDepth"}
    assert all(layer.name in configs for layer in rewritten.layers if type(layer) in ours)
    assert type(configs["block0_mlp_gelu"]).__name__ == "OutputQuantizeConfig"
    data = convert(qat, "int8", calib, micro=True)
    qat_acc, out, parsed = micro_accuracy(data, test.x, test.y)
    assert_full_int8(parsed)
    assert parsed.outputs[0].scale == pytest.approx(output_range_scale(qat), rel=1e-4)
    reference = LiteRTRunner(data, parsed, "reference").run(test.x)
    lsb = int(np.abs(out.astype(np.int32) - reference.astype(np.int32)).max())
    print(f"vit_micro depth {depth}: float {float_acc:.4f}, PTQ int8 (micro) {ptq_acc:.4f}, "
          f"QAT int8 (micro) {qat_acc:.4f}, micro vs reference kernels {lsb} LSB")
    assert qat_acc >= ptq_acc, (qat_acc, ptq_acc, float_acc)
    assert qat_acc >= float_acc - 0.02, (qat_acc, float_acc)
    return float_acc, ptq_acc, qat_acc


def test_vit_micro_one_block_qat_beats_ptq_in_micro(digits16):
    """The fast variant: one encoder block; every zoo layer kind of the ViT is wrapped."""
    vit_qat_against_ptq(digits16, depth=1, float_epochs=10, qat_epochs=3)


@pytest.mark.slow
def test_vit_micro_qat_beats_ptq_in_micro(digits16):
    vit_qat_against_ptq(digits16, depth=4, float_epochs=15, qat_epochs=3)


def _prune(model, share):
    """Zero the smallest-magnitude ``share`` of every kernel (what magnitude pruning leaves)."""
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            kernel = layer.kernel.numpy()
            threshold = np.quantile(np.abs(kernel), share)
            layer.kernel.assign(np.where(np.abs(kernel) < threshold, 0.0, kernel))
    return model


def _kernel_zeros(qat_model):
    """{layer: share of zeros in its float kernel variable} of a QAT model."""
    return {v.name: float(np.mean(v.numpy() == 0)) for v in qat_model.weights
            if v.name.endswith("/kernel:0")}


def test_sparsity_preserving_qat_keeps_zeros_in_the_tflite(cnn, digits8):
    model, _ = apply_micro_rewrites(cnn)
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    _prune(pruned, 0.6)
    train = FinetuneData(digits8.train.x, digits8.train.y)
    plain = quantize_aware_train(pruned, train, epochs=1, learning_rate=1e-3)
    assert min(_kernel_zeros(plain).values()) < 0.3  # plain QAT regrows pruned weights
    kept = quantize_aware_train(pruned, train, epochs=2, learning_rate=1e-3, preserve="sparsity")
    sparsity = sparsity_by_layer(convert(kept, "int8", digits8.train.x[:CALIBRATION], micro=True))
    assert set(sparsity) == {"quant_conv1", "quant_conv2", "quant_head"}
    assert all(s >= 0.59 for s in sparsity.values()), sparsity


def test_cluster_preserving_qat_keeps_k_values_per_channel(cnn, digits8):
    import tensorflow_model_optimization as tfmot

    k = 8
    clustering = tfmot.clustering.keras
    keras.utils.set_random_seed(0)
    base = keras.models.clone_model(cnn)  # cluster_weights changes the layers it wraps
    base.set_weights(cnn.get_weights())
    clustered = clustering.cluster_weights(
        base, number_of_clusters=k,
        cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS)
    train = FinetuneData(digits8.train.x, digits8.train.y)
    finetune(clustered, train, epochs=1, learning_rate=1e-3)
    # Clustered as Dense (TFMOT cannot cluster PointwiseDense), then rewritten for TFLite Micro.
    clustered, _ = apply_micro_rewrites(clustering.strip_clustering(clustered))
    calib = digits8.train.x[:CALIBRATION]
    plain = quantize_aware_train(clustered, train, epochs=1, learning_rate=1e-3)
    conv2 = [v.numpy() for v in plain.weights if v.name == "conv2/kernel:0"][0]
    assert max(len(np.unique(conv2[..., c])) for c in range(conv2.shape[-1])) > k  # plain QAT
    kept = quantize_aware_train(clustered, train, epochs=2, learning_rate=1e-3, preserve="cluster")
    data = convert(kept, "int8", calib, micro=True)
    unique = max_unique_per_channel(data)
    assert set(unique) == {"quant_conv1", "quant_conv2", "quant_head"}
    assert all(n <= k for n in unique.values()), unique
    acc, _, parsed = micro_accuracy(data, digits8.test.x, digits8.test.y)
    assert_full_int8(parsed)
    assert acc > 0.6


def test_qat_models_clone_and_round_trip_as_saved_model(tmp_path, cnn, digits16):
    """Cloned and saved under ``qat_scope``. SavedModel: TFMOT's QuantizeLayer does not load
    from .keras (tensorflow/model-optimization#1123), and .h5 needs unique weight names, which
    the zoo's attention projections do not have."""
    keras.utils.set_random_seed(0)
    vit = quantize_model(apply_micro_rewrites(create_model("vit_micro", depth=1))[0])
    qat = quantize_model(apply_micro_rewrites(cnn)[0])
    path = str(tmp_path / "qat")
    with qat_scope():
        clone = keras.models.clone_model(vit)
        qat.save(path, save_format="tf")
        loaded = keras.models.load_model(path)
    configs = [(l.name, l.get_config().get("quantize_config")) for l in vit.layers]
    assert [(l.name, l.get_config().get("quantize_config")) for l in clone.layers] == configs
    assert {"OutputQuantizeConfig", "PassThroughQuantizeConfig", "KernelQuantizeConfig",
            "ProjectionsQuantizeConfig"} <= {c["class_name"].split(">")[-1] for _, c in configs if c}
    x = digits16.test.x[:4]
    clone.set_weights(vit.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), vit.predict(x, verbose=0), atol=1e-6)
    x = load_digits((8, 8, 1)).test.x[:4]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)


class _Doubled(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)


NO_LABELS = FinetuneData(np.zeros((4, 8, 8, 1), np.float32))  # training would fail differently


def test_subclassed_model_refused_before_training():
    model = _Subclassed()
    model(np.zeros((1, 4), np.float32))
    with pytest.raises(RecipeError, match=r"quantization-aware training: model .* is a subclassed Keras model whose layers TFMOT cannot see"):
        quantize_aware_train(model, NO_LABELS, epochs=1)


def test_unknown_layer_named_with_its_class():
    inputs = keras.Input((8, 8, 1))
    x = _Doubled(name="twice")(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, x)
    with pytest.raises(RecipeError, match=r"layer 'twice' of class .*test_qat\._Doubled has no "
                                          r"QuantizeConfig.*LAYER_CONFIGS"):
        quantize_aware_train(model, NO_LABELS, epochs=1)


def test_unknown_activation_refused():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Activation("elu", name="act")(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(RecipeError, match=r"layer 'act' \(Activation\) uses activation 'elu'"):
        check_qat(keras.Model(inputs, x))


def test_bad_preserve_requests():
    with pytest.raises(RecipeError, match=r"unknown preserve='pruning'.*'sparsity', 'cluster'"):
        check_qat(small_cnn(), preserve="pruning")
    vit = create_model("vit_micro", depth=1)
    with pytest.raises(RecipeError, match=r"preserve='sparsity': layer 'block0_attn' "
                                          r"\(MultiHeadSelfAttention\) cannot keep its zeros"):
        quantize_aware_train(vit, NO_LABELS, epochs=1, preserve="sparsity")


@pytest.mark.parametrize("name", ["vit_micro", "perceiver_micro", "cswin_micro", "resnest_micro"])
def test_every_micro_model_has_a_config_for_each_layer(name):
    """After the TFLite Micro rewrites, the table covers each zoo micro model's layers."""
    model, _ = apply_micro_rewrites(create_model(name))
    check_qat(model)


def test_batch_norm_is_accepted_only_after_a_convolution():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.BatchNormalization(name="bn_after_conv")(keras.layers.Conv2D(4, 3)(inputs))
    x = keras.layers.BatchNormalization(name="bn_after_relu")(keras.layers.ReLU(name="act")(x))
    with pytest.raises(RecipeError, match=r"layer 'bn_after_relu' \(BatchNormalization\) follows "
                                          r"ReLU; TFMOT quantizes it only folded into a preceding "
                                          r"Conv2D / DepthwiseConv2D"):
        check_qat(keras.Model(inputs, x))
