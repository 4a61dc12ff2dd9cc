"""``.keras`` round trips of hybrid models, and the loader's errors."""
import sys

import cirq
import numpy as np
import pytest
import tensorflow_quantum as tfq
import tf_keras as keras

from edgezoo.base.errors import ModelFileError
from edgezoo.quantum import factories as F
from edgezoo.quantum import load_model, save_model
from edgezoo.quantum.ansatze import hardware_efficient, hardware_efficient_block, identity_blocks, z_observables
from edgezoo.quantum.encoders import AngleEncoder, ReUploadingEncoder
from edgezoo.quantum.errors import QuantumDependencyError
from edgezoo.quantum.training import compile_classifier

Q = cirq.GridQubit.rect(1, 3)
X = np.array([[0.1, -0.4, 0.8], [0.5, 0.2, -0.9], [-1.0, 0.0, 1.0]], np.float32)
Y = np.array([1, -1, 1], np.float32)
CIRCUITS = AngleEncoder(Q).to_tensor(X)


def _round_trip(model, inputs, tmp_path, train=True):
    compile_classifier(model, "hinge", 0.05)
    if train:  # saved weights must be the trained ones, not the initial ones
        model.fit(inputs, Y, epochs=1, verbose=0)
    before = model(inputs).numpy()
    path = save_model(model, tmp_path / "m.keras")
    loaded = load_model(path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    return before, loaded


def test_hybrid_round_trip_gives_identical_outputs(tmp_path):
    model = F.hybrid_classifier(hardware_efficient(Q), hidden=(4,), seed=1)
    before, loaded = _round_trip(model, CIRCUITS, tmp_path)
    np.testing.assert_array_equal(loaded(CIRCUITS).numpy(), before)
    assert loaded.evaluate(CIRCUITS, Y, verbose=0, return_dict=True).keys() == {"loss", "hinge_accuracy"}


def test_multi_filter_identity_block_round_trip(tmp_path):
    blocks = identity_blocks(lambda k: hardware_efficient_block(Q, k, prefix=f"b{k}_"), 1, z_observables(Q))
    model = F.multi_filter_classifier([blocks, hardware_efficient(Q)], seed=3)
    before, loaded = _round_trip(model, CIRCUITS, tmp_path)
    np.testing.assert_array_equal(loaded(CIRCUITS).numpy(), before)
    assert loaded.get_layer("pqc_0").get_config()["mirror"] == blocks.mirror


def test_controlled_round_trip(tmp_path):
    model = F.controlled_classifier(hardware_efficient(Q, layers=1, readout="first"), 3, hidden=(4,), seed=2)
    before, loaded = _round_trip(model, [CIRCUITS, X], tmp_path)
    np.testing.assert_array_equal(loaded([CIRCUITS, X]).numpy(), before)


def test_reuploading_round_trip(tmp_path):
    model = F.reuploading_classifier(ReUploadingEncoder(Q, layers=2), seed=2)
    before, loaded = _round_trip(model, X, tmp_path)
    np.testing.assert_array_equal(loaded(X).numpy(), before)


def test_noisy_and_sampled_round_trip_keep_weights_and_options(tmp_path):
    for kw in (dict(noise="depolarize:0.02", repetitions=20), dict(repetitions=50)):
        model = F.quantum_classifier(hardware_efficient(Q, layers=1), seed=4, **kw)
        _, loaded = _round_trip(model, CIRCUITS, tmp_path, train=False)
        assert loaded.get_layer("pqc").get_config() == model.get_layer("pqc").get_config()


def test_tfq_layers_alone_cannot_be_saved(tmp_path):
    """Why the wrappers exist (tensorflow/quantum#899)."""
    a = hardware_efficient(Q)
    inp = keras.Input((), dtype="string")
    model = keras.Model(inp, tfq.layers.PQC(a.circuit, a.observables)(inp))
    with pytest.raises(NotImplementedError):
        model.save(tmp_path / "tfq.keras")


def test_loader_without_tensorflow_quantum_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_quantum", None)
    with pytest.raises(QuantumDependencyError, match=r'needs tensorflow-quantum.*pip install "edgezoo\[quantum\]"'):
        load_model(tmp_path / "m.keras")
    assert issubclass(QuantumDependencyError, ImportError)


def test_loader_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no model file at"):
        load_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    with pytest.raises(ModelFileError, match="is not a .keras model file"):
        load_model(bad)
    with pytest.raises(ModelFileError, match="ending in .keras"):
        save_model(F.quantum_classifier(hardware_efficient(Q)), tmp_path / "m.h5")
