"""Model factories and layer options: seeds, differentiators, sampling, noise, configs, errors."""
import cirq
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.quantum import factories as F
from edgezoo.quantum.ansatze import hardware_efficient, readout_ansatz
from edgezoo.quantum.encoders import AngleEncoder, ReUploadingEncoder
from edgezoo.quantum.errors import QuantumConfigError, QubitCountError
from edgezoo.quantum.layers import PQC, ControlledPQC, NoisyPQC, ReUploadingPQC

Q = cirq.GridQubit.rect(1, 3)
X = np.array([[0.1, -0.4, 0.8], [0.5, 0.2, -0.9], [-1.0, 0.0, 1.0]], np.float32)
ENC = AngleEncoder(Q)


def test_two_pqc_layers_start_with_different_weights():
    a = hardware_efficient(Q)
    w1, w2 = (PQC(a.circuit, a.observables).get_weights()[0] for _ in range(2))
    assert not np.allclose(w1, w2)
    m = F.multi_filter_classifier(a, n_filters=2, seed=0)
    f0, f1 = m.get_layer("pqc_0").get_weights()[0], m.get_layer("pqc_1").get_weights()[0]
    assert np.abs(f0 - f1).max() > 0.1
    assert np.all((0 <= f0) & (f0 < 2 * np.pi))


def test_same_seed_same_weights():
    a = hardware_efficient(Q)
    np.testing.assert_array_equal(PQC(a.circuit, a.observables, seed=7).get_weights()[0],
                                  PQC(a.circuit, a.observables, seed=7).get_weights()[0])
    m1, m2 = F.hybrid_classifier(a, seed=4), F.hybrid_classifier(a, seed=4)
    for w1, w2 in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_quantum_and_hybrid_classifiers():
    a = hardware_efficient(Q)
    out = F.quantum_classifier(a)(ENC.to_tensor(X)).numpy()
    assert out.shape == (3, 3) and np.all(np.abs(out) <= 1 + 1e-6)
    hybrid = F.hybrid_classifier(a, n_outputs=2, hidden=(4,), activation="softmax")
    probs = hybrid(ENC.to_tensor(X)).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert hybrid.count_params() == len(a) + (3 * 4 + 4) + (4 * 2 + 2)


def test_controlled_classifier_feeds_the_controller_into_the_circuit():
    a = hardware_efficient(Q, layers=1)
    m = F.controlled_classifier(a, n_features=3, hidden=(5,))
    out = m([ENC.to_tensor(X), X]).numpy()
    assert out.shape == (3, 3)
    # zero controller: every circuit parameter is 0, so the output is <Z> of the encoded data alone
    m.set_weights([np.zeros_like(w) for w in m.get_weights()])
    np.testing.assert_allclose(m([ENC.to_tensor(X), X]).numpy(), np.cos(np.pi * X), atol=1e-5)
    assert isinstance(m.get_layer("controlled_pqc"), ControlledPQC)


def test_reuploading_classifier_learns_scales():
    enc = ReUploadingEncoder(Q, layers=2)
    m = F.reuploading_classifier(enc, seed=1)
    layer = m.get_layer("reuploading_pqc")
    assert isinstance(layer, ReUploadingPQC)
    np.testing.assert_allclose(layer.scales.numpy(), np.full((2, 3), np.pi))
    assert m(X).shape == (3, 1)
    assert len(layer.trainable_weights) == 2 and layer.parameters.shape == (2 * 2 * 3,)
    with pytest.raises(QubitCountError, match="encodes 3 features per layer, but its input has 4"):
        layer(np.zeros((1, 4), np.float32))


def test_noisy_model_uses_noisy_pqc_and_damps_expectations():
    a = hardware_efficient(Q, layers=1)
    clean = F.quantum_classifier(a, seed=2)
    noisy = F.quantum_classifier(a, seed=2, noise="depolarize:0.05", repetitions=200)
    assert isinstance(noisy.get_layer("pqc"), NoisyPQC)
    x = ENC.to_tensor(X)
    c, n = np.abs(clean(x).numpy()).mean(), np.abs(noisy(x).numpy()).mean()
    assert n < c  # depolarizing noise shrinks expectations towards 0
    assert F.quantum_classifier(a, noise=0.01).get_layer("pqc").get_config()["repetitions"] == 100


def test_layer_config_round_trip():
    a = readout_ansatz(Q)
    layer = PQC(a.circuit, a.observables, seed=5, differentiator="parameter_shift", repetitions=50, name="p")
    cfg = layer.get_config()
    assert cfg["symbols"] == a.symbols and cfg["seed"] == 5 and cfg["differentiator"] == "parameter_shift"
    assert cirq.read_json(json_text=cfg["circuit"]) == a.circuit
    clone = PQC.from_config(cfg)
    np.testing.assert_array_equal(clone.get_weights()[0], layer.get_weights()[0])
    assert clone.get_config() == cfg
    cfg["symbols"] = ["other"]
    with pytest.raises(QuantumConfigError, match="differ from the saved ones"):
        PQC.from_config(cfg)


@pytest.mark.parametrize("kwargs, match", [
    (dict(differentiator="adjoint", repetitions=100), "adjoint differentiator needs exact expectations"),
    (dict(differentiator="backprop"), "unknown differentiator 'backprop'; choose one of adjoint, parameter_shift"),
    (dict(repetitions=0), "repetitions must be a positive int or None"),
    (dict(repetitions=1.5), "repetitions must be a positive int"),
    (dict(noise="dephase:0.1"), "unknown noise channel 'dephase'"),
    (dict(noise="depolarize:x"), "needs a probability in"),
    (dict(noise=1.5), r"noise probability must be in \[0, 1\]"),
    (dict(noise=0.01, differentiator="adjoint"), "adjoint differentiator needs exact expectations"),
])
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(QuantumConfigError, match=match):
        F.quantum_classifier(hardware_efficient(Q), **kwargs)


def test_bad_circuits_and_observables_are_clear_errors():
    with pytest.raises(QuantumConfigError, match="no sympy symbols to train"):
        PQC(cirq.Circuit(cirq.X(Q[0])), [cirq.Z(Q[0])])
    with pytest.raises(QuantumConfigError, match="observables must be a non-empty list"):
        PQC(hardware_efficient(Q).circuit, ["Z"])
    with pytest.raises(QuantumConfigError, match="use NoisyPQC"):
        PQC(hardware_efficient(Q).circuit.with_noise(cirq.depolarize(0.1)), [cirq.Z(Q[0])])
    with pytest.raises(QuantumConfigError, match="no noisy variant"):
        F.controlled_classifier(hardware_efficient(Q), 3, noise=0.1)
    with pytest.raises(QuantumConfigError, match="expected an Ansatz"):
        F.quantum_classifier(hardware_efficient(Q).circuit)
    with pytest.raises(QuantumConfigError, match="needs a ReUploadingEncoder"):
        F.reuploading_classifier(ENC)


def test_a_sampled_model_trains_with_parameter_shift():
    a = hardware_efficient(Q, layers=1)
    m = F.hybrid_classifier(a, repetitions=100, differentiator="parameter_shift", seed=0)
    m.compile(keras.optimizers.Adam(0.05), keras.losses.Hinge())
    before = [w.copy() for w in m.get_weights()]
    m.fit(ENC.to_tensor(X), np.array([1, -1, 1], np.float32), epochs=1, verbose=0)
    assert not np.allclose(before[0], m.get_weights()[0])
