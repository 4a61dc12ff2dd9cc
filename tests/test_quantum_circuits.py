"""Physics of the quantum layers and ansätze: expectations, gradients, identity blocks."""
import cirq
import numpy as np
import pytest
import sympy
import tensorflow as tf
import tensorflow_quantum as tfq

from edgezoo.quantum.ansatze import (hardware_efficient, hardware_efficient_block, identity_blocks, qcnn,
                                     readout_ansatz, two_qubit_pool, two_qubit_unitary, z_observables)
from edgezoo.quantum.encoders import AngleEncoder
from edgezoo.quantum.errors import QuantumConfigError
from edgezoo.quantum.layers import PQC

Q = cirq.GridQubit.rect(1, 3)


def test_z_after_rx_is_cos_theta():
    theta = np.linspace(-np.pi, np.pi, 9)
    layer = PQC(cirq.Circuit(cirq.rx(sympy.Symbol("t"))(Q[0])), [cirq.Z(Q[0])], seed=0)
    empty = tfq.convert_to_tensor([cirq.Circuit()])
    got = []
    for t in theta:
        layer.set_weights([np.array([t], np.float32)])
        got.append(float(layer(empty)[0, 0]))
    np.testing.assert_allclose(got, np.cos(theta), atol=1e-6)


def test_sampled_expectation_is_close_to_exact():
    layer = PQC(cirq.Circuit(cirq.rx(sympy.Symbol("t"))(Q[0])), [cirq.Z(Q[0])], repetitions=4000, seed=0)
    layer.set_weights([np.array([1.0], np.float32)])
    got = layer(tfq.convert_to_tensor([cirq.Circuit()] * 4)).numpy()
    assert abs(got.mean() - np.cos(1.0)) < 0.03  # 4 × 4000 shots: σ ≈ 0.007


def _gradients(differentiator, weights, inputs, ansatz):
    layer = PQC(ansatz.circuit, ansatz.observables, differentiator=differentiator, seed=0)
    layer.set_weights([weights])
    with tf.GradientTape() as tape:
        out = layer(inputs)
        loss = tf.reduce_sum(out * tf.constant([[1.0, -0.5, 0.25]]))
    return tape.gradient(loss, layer.trainable_weights)[0].numpy()


def test_adjoint_parameter_shift_and_finite_difference_gradients_agree():
    ansatz = hardware_efficient(Q, layers=2)
    weights = np.random.default_rng(1).uniform(0, 2 * np.pi, len(ansatz)).astype(np.float32)
    inputs = AngleEncoder(Q).to_tensor([[0.1, -0.4, 0.8], [0.5, 0.2, -0.9]])
    adjoint = _gradients("adjoint", weights, inputs, ansatz)
    shift = _gradients("parameter_shift", weights, inputs, ansatz)
    finite = _gradients("finite_difference", weights, inputs, ansatz)
    assert np.abs(adjoint).max() > 0.1  # a real gradient, not zeros
    np.testing.assert_allclose(shift, adjoint, atol=1e-4)
    np.testing.assert_allclose(finite, adjoint, atol=1e-2)


def test_rx_gradient_is_minus_sin():
    for diff in ("adjoint", "parameter_shift"):
        layer = PQC(cirq.Circuit(cirq.rx(sympy.Symbol("t"))(Q[0])), [cirq.Z(Q[0])], differentiator=diff, seed=0)
        layer.set_weights([np.array([0.7], np.float32)])
        with tf.GradientTape() as tape:
            out = layer(tfq.convert_to_tensor([cirq.Circuit()]))
        assert tape.gradient(out, layer.trainable_weights)[0].numpy()[0] == pytest.approx(-np.sin(0.7), abs=1e-5)


def test_readout_ansatz_is_farhi_neven():
    ro = cirq.GridQubit(-1, -1)
    a = readout_ansatz(Q, gates=("xx", "zz"))
    ops = list(a.circuit.all_operations())
    assert ops[0] == cirq.X(ro) and ops[1] == cirq.H(ro) and ops[-1] == cirq.H(ro)
    assert [type(op.gate) for op in ops[2:-1]] == [cirq.XXPowGate] * 3 + [cirq.ZZPowGate] * 3
    assert all(op.qubits[1] == ro for op in ops[2:-1])
    assert a.symbols == ["xx0_0", "xx0_1", "xx0_2", "zz1_0", "zz1_1", "zz1_2"]
    assert a.observables == [cirq.Z(ro)]
    # all parameters zero: X then H H leaves the readout in |1>, so <Z> = -1
    zero = cirq.resolve_parameters(a.circuit, {s: 0.0 for s in a.symbols})
    assert cirq.Simulator().simulate_expectation_values(zero, a.observables)[0].real == pytest.approx(-1)


def test_qcnn_blocks_have_15_and_6_parameters():
    s = sympy.symbols("s0:15")
    assert len(cirq.parameter_names(two_qubit_unitary(Q[0], Q[1], s))) == 15
    assert len(cirq.parameter_names(two_qubit_pool(Q[0], Q[1], s[:6]))) == 6
    a = qcnn(cirq.GridQubit.rect(1, 8))
    assert len(a) == 3 * (15 + 6) and a.observables == [cirq.Z(cirq.GridQubit(0, 7))]
    # all parameters zero, the pooling block is CNOT(source → sink)
    pool = cirq.resolve_parameters(two_qubit_pool(Q[0], Q[1], s[:6]), {str(x): 0.0 for x in s[:6]})
    assert cirq.allclose_up_to_global_phase(cirq.unitary(pool), cirq.unitary(cirq.CNOT(Q[0], Q[1])))
    with pytest.raises(QuantumConfigError, match="power-of-two number of qubits.*got 6"):
        qcnn(cirq.GridQubit.rect(1, 6))


def test_hardware_efficient_layout():
    a = hardware_efficient(Q, layers=2, rotations=("y", "z"))
    assert len(a) == 2 * 2 * 3
    assert sum(isinstance(op.gate, cirq.CZPowGate) for op in a.circuit.all_operations()) == 2 * 2
    assert a.observables == [cirq.Z(q) for q in Q]
    assert hardware_efficient(Q, readout="first").observables == [cirq.Z(Q[0])]
    with pytest.raises(QuantumConfigError, match="rotations must be a non-empty list"):
        hardware_efficient(Q, rotations=("w",))
    with pytest.raises(QuantumConfigError, match="readout must be 'all' or 'first'"):
        hardware_efficient(Q, readout="last")


def test_identity_blocks_start_as_identity_and_train_apart():
    a = identity_blocks(lambda k: hardware_efficient_block(Q, k, prefix=f"b{k}_"), 2, z_observables(Q))
    assert len(a) == 2 * 2 * 2 * 3 and len(a.mirror) == len(a) // 2
    layer = PQC(a.circuit, a.observables, seed=3, mirror=a.mirror)
    values = layer.parameter_values()
    assert all(values[m] == values[s] for m, s in a.mirror.items())
    assert len(set(values.values())) == len(a) // 2  # random, apart from the mirrored copies
    x = [[0.3, -0.6, 0.9]]
    out = layer(AngleEncoder(Q).to_tensor(x)).numpy()[0]
    np.testing.assert_allclose(out, np.cos(np.pi * np.array(x[0])), atol=1e-5)
    # the mirrored symbols are separate weights: the gradient reaches both halves
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(AngleEncoder(Q).to_tensor(x)) * [[1.0, 2.0, 3.0]])
    grad = tape.gradient(loss, layer.trainable_weights)[0].numpy()
    assert np.abs(grad).max() > 1e-3
