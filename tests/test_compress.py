"""One recipe through every step, checked on the bytes that ship and in TFLite Micro."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.converters import Recipe, compress
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge.runners.micro import MicroRunner
from edgezoo.edge.profiles import get_profile
from edgezoo.edge.verification import top1, verify


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


@pytest.mark.slow  # about 40 s; each step alone and prune + cluster together run by default
def test_prune_cluster_qat_lut_in_one_recipe(trained, digits8):
    recipe = Recipe(prune=0.5, prune_schedule="constant", cluster=8, qat=True, finetune_epochs=3,
                    learning_rate=3e-4, target="nrf52840")
    before = [w.copy() for w in trained.get_weights()]
    result = compress(trained, recipe, digits8, micro=True)
    data, report, parsed = result.tflite, result.report, result.parsed
    float_out = trained.predict(digits8.test.x, verbose=0)
    checked = verify(data, parsed, get_profile("nrf52840"), digits8.test.x, float_outputs=float_out,
                     labels=digits8.test.y, lsb_model=result.uncompressed_tflite)
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
    assert checked["fits"] is True

    # LiteRT has no DECODE op: the per-op gate runs on the int8 model before LUT compression,
    # which is lossless: TFLite Micro gives the same outputs on both
    plain = result.uncompressed_tflite
    assert checked["checks"]["micro_vs_reference_per_op"]["passed"]
    assert checked["per_op"]["model"].startswith("the same model before LUT compression")
    assert np.array_equal(MicroRunner(data, parsed).run(digits8.test.x),
                          MicroRunner(plain, read_tflite(plain)).run(digits8.test.x))
    float_acc = float((top1(float_out) == digits8.test.y).mean())
    assert checked["accuracy"]["converted_tflite-micro"] >= float_acc - 0.05, checked["accuracy"]


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
    report = test_tflite(path, "nrf52840", float_model=tmp_path / "float.keras",
                         data=tmp_path / "data.npz", input_range="0,1")
    assert "which LiteRT has no kernel" in report["runtimes"]["per_op"]
    assert "micro_vs_reference_per_op" not in report["checks"]
    assert report["passed"] is True, report["failures"]
    assert report["checks"]["agreement_top1"]["value"] >= 0.98
    assert report["accuracy"]["converted_tflite-micro"] >= 0.9 and report["arena_bytes"] > 0
