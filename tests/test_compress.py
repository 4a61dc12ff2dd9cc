"""One recipe through every step, checked on the bytes that ship and in TFLite Micro."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.convert import verify_on_target
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge.runners.micro import MicroRunner
from edgezoo.converters import Recipe, compress
from edgezoo.edge.compare import compare_runtimes, top1
from edgezoo.edge.profiles import get_profile


@pytest.fixture(scope="module")
def trained(digits8):
    """A small CNN with a GELU (so the micro rewrites have work) trained on 8x8 digits."""
    from edgezoo.converters.finetune import FinetuneData, finetune

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="gelu")(x)
    model = keras.Model(inp, keras.layers.Dense(10)(x), name="small")
    finetune(model, FinetuneData.from_dataset(digits8), epochs=20, learning_rate=3e-3)
    return model


def test_prune_cluster_qat_lut_in_one_recipe(trained, digits8):
    recipe = Recipe(prune=0.5, prune_schedule="constant", cluster=8, qat=True, finetune_epochs=3,
                    learning_rate=3e-4, target="nrf52840")
    before = [w.copy() for w in trained.get_weights()]
    result = compress(trained, recipe, digits8, micro=True)
    data, report = result.tflite, result.report
    parsed = verify_on_target(data, report, get_profile("nrf52840"))
    assert all(np.array_equal(a, b) for a, b in zip(before, trained.get_weights()))  # input kept
    assert report["recipe"]["steps"] == ["prune", "cluster", "qat", "quantize:int8",
                                         "micro_compression"]
    assert report["recipe"]["rewrites"] == ["gelu", "dense_as_conv1x1"]
    assert set(report["steps"]) == {"prune", "cluster", "qat", "micro_compression"}
    assert report["steps"]["qat"]["preserve"] == "cluster"
    sparsity = report["weights"]["sparsity_by_layer"]
    unique = report["weights"]["max_unique_per_channel"]
    assert len(sparsity) == 4
    assert all(s >= 0.45 for s in sparsity.values()), sparsity  # cluster + QAT kept the zeros
    # Cluster-preserving QAT keeps <= 8 values per channel except in the first convolution, whose
    # channels hold only 9 weights (3x3x1): measured 9 distinct values there after QAT, 7 without.
    first_conv = f"quant_{trained.layers[1].name}"
    assert first_conv in unique
    assert all(k <= 8 for layer, k in unique.items() if layer != first_conv), unique
    assert report["tflite_bytes"] < report["uncompressed_tflite_bytes"]
    assert "TFLM_DECODE" in parsed.op_names or "DECODE" in " ".join(parsed.op_names)
    assert report["fits"] is True

    # LiteRT has no DECODE op: it runs the int8 model before LUT compression, which is lossless
    plain = result.uncompressed_tflite
    runtimes, outputs = compare_runtimes(plain, read_tflite(plain), digits8.test.x,
                                         labels=digits8.test.y)
    assert runtimes["micro_vs_reference_max_lsb"] <= 1
    assert np.array_equal(MicroRunner(data, parsed).run(digits8.test.x), outputs["micro"])
    float_acc = float((top1(trained.predict(digits8.test.x, verbose=0)) == digits8.test.y).mean())
    assert runtimes["accuracy"]["int8_micro"] >= float_acc - 0.05, (runtimes["accuracy"], float_acc)


def test_distillation_recovers_a_clustered_model_without_labels(trained, digits8):
    """No labels: clustering to 4 values per channel trains on the float model's soft targets."""
    from edgezoo.converters.finetune import FinetuneData

    unlabelled = FinetuneData(digits8.train.x)
    result = compress(trained, Recipe(cluster=4, distill="self", finetune_epochs=3,
                                      learning_rate=3e-4), unlabelled, micro=True)
    assert max(result.report["weights"]["max_unique_per_channel"].values()) <= 4
    assert "cluster" in result.report["steps"] and "distill" not in result.report["steps"]
    micro = top1(MicroRunner(result.tflite, result.parsed).run(digits8.test.x))
    agreement = float((micro == top1(trained.predict(digits8.test.x, verbose=0))).mean())
    assert agreement >= 0.9, agreement


def test_on_device_test_of_a_lut_compressed_model(trained, digits8, tmp_path):
    """``edgezoo test`` on a DECODE model: TFLite Micro alone (LiteRT has no DECODE kernel)."""
    from edgezoo.device_test import test_tflite

    result = compress(trained, Recipe(cluster=8, finetune_epochs=1), digits8, micro=True)
    path = tmp_path / "model.tflite"
    path.write_bytes(result.tflite)
    np.savez(tmp_path / "data.npz", x=digits8.test.x, y=digits8.test.y)
    trained.save(tmp_path / "float.keras")
    report = test_tflite(path, "nrf52840", keras_model=tmp_path / "float.keras",
                         data=tmp_path / "data.npz")
    assert "which LiteRT has no kernel" in report["note"]
    assert report["passed"] is True and report["checks"]["int8_vs_float_top1"]["value"] >= 0.98
    assert report["accuracy"]["int8_micro"] >= 0.9 and report["arena_bytes"] > 0
