"""Encoders: the circuits they build, and the errors for data they cannot encode."""
import cirq
import numpy as np
import pytest

from edgezoo.quantum.encoders import AngleEncoder, BasisEncoder, IQPEncoder, ReUploadingEncoder
from edgezoo.quantum.errors import EncodingRangeError, QuantumConfigError, QubitCountError

Q4 = cirq.GridQubit.rect(1, 4)


def z_expectations(circuit, qubits):
    state = cirq.final_state_vector(circuit, qubit_order=qubits, dtype=np.complex128)
    return [cirq.Z(q).expectation_from_state_vector(state, {q: i for i, q in enumerate(qubits)}).real
            for q in qubits]


def test_basis_encoder_flips_qubits_above_threshold():
    enc = BasisEncoder(Q4, threshold=0.5)
    c = enc.circuit(enc.validate([0.9, 0.2, 0.51, 0.5])[0])
    assert [op.qubits[0] for op in c.all_operations()] == [Q4[0], Q4[2]]
    assert all(op.gate == cirq.X for op in c.all_operations())
    assert z_expectations(c, Q4) == pytest.approx([-1, 1, -1, 1])


def test_angle_encoder_expectations_are_cos_of_scaled_values():
    x = np.array([[-1.0, -0.25, 0.4, 1.0]])
    for axis in ("x", "y"):
        c = AngleEncoder(Q4, axis=axis).encode(x)[0]
        assert z_expectations(c, Q4) == pytest.approx(np.cos(np.pi * x[0]), abs=1e-7)
    c = AngleEncoder(Q4, scale=np.pi / 2).encode(x)[0]
    assert z_expectations(c, Q4) == pytest.approx(np.cos(np.pi / 2 * x[0]), abs=1e-7)


def test_fewer_features_than_qubits_leave_the_rest_in_zero():
    c = AngleEncoder(Q4).encode([[0.5, 0.5]])[0]
    assert len(list(c.all_operations())) == 2
    assert z_expectations(c + cirq.Circuit(cirq.I.on_each(*Q4)), Q4)[2:] == pytest.approx([1, 1])


def test_iqp_encoder_matches_its_formula_as_a_unitary():
    x = np.array([0.3, -0.7, 0.1])
    qs = Q4[:3]
    enc = IQPEncoder(qs, reps=2, entanglement="full")
    phi = np.pi * x
    h = cirq.unitary(cirq.Circuit(cirq.H.on_each(*qs)))
    # diagonal of exp(-i [Σ φ_i Z_i + Σ φ_ij Z_i Z_j]) in the computational basis
    z = np.array([[1 - 2 * ((b >> (2 - i)) & 1) for i in range(3)] for b in range(8)])
    energy = z @ phi + sum((np.pi - phi[i]) * (np.pi - phi[j]) * z[:, i] * z[:, j]
                           for i, j in [(0, 1), (0, 2), (1, 2)])
    layer = np.diag(np.exp(-1j * energy)) @ h
    assert cirq.allclose_up_to_global_phase(cirq.unitary(enc.encode([x])[0]), layer @ layer, atol=1e-6)
    assert len(enc.pairs(4)) == 6 and len(IQPEncoder(Q4).pairs(4)) == 3


def test_reuploading_encoder_builds_symbolic_layers():
    enc = ReUploadingEncoder(Q4[:2], layers=3)
    assert enc.input_symbols() == [["in0_0", "in0_1"], ["in1_0", "in1_1"], ["in2_0", "in2_1"]]
    c = enc.build(lambda l: cirq.Circuit(cirq.CZ(*Q4[:2])))
    assert {str(s) for s in cirq.parameter_names(c)} == {s for row in enc.input_symbols() for s in row}
    assert len(c) == 6
    row = enc.circuit([0.5, -0.5])
    assert not cirq.is_parameterized(row)
    assert z_expectations(row, Q4[:2]) == pytest.approx([np.cos(1.5), np.cos(1.5)], abs=1e-7)


def test_encoded_tensor_has_one_circuit_per_sample():
    t = AngleEncoder(Q4).to_tensor(np.zeros((5, 4)))
    assert t.shape == (5,) and t.dtype.name == "string"


def test_images_are_flattened_one_pixel_per_qubit():
    enc = BasisEncoder(cirq.GridQubit.rect(2, 2))
    assert enc.validate(np.ones((3, 2, 2))).shape == (3, 4)


@pytest.mark.parametrize("enc", [BasisEncoder(Q4), AngleEncoder(Q4), IQPEncoder(Q4), ReUploadingEncoder(Q4)])
def test_more_features_than_qubits_is_a_clear_error(enc):
    with pytest.raises(QubitCountError, match=r"has 4 qubits but the data has 5 features.*at least 5 qubits"):
        enc.encode(np.zeros((2, 5)))


@pytest.mark.parametrize("enc, bad, match", [
    (BasisEncoder(Q4), 1.5, r"BasisEncoder encodes values in \[0, 1\].*value 1.5.*scale the data to \[0, 1\]"),
    (BasisEncoder(Q4), -0.1, r"BasisEncoder encodes values in \[0, 1\].*sample 1, feature 2"),
    (AngleEncoder(Q4), 2.0, r"AngleEncoder encodes values in \[-1, 1\].*MinMaxScaler"),
    (IQPEncoder(Q4), -3.0, r"IQPEncoder encodes values in \[-1, 1\].*value -3"),
    (ReUploadingEncoder(Q4), 1.01, r"ReUploadingEncoder encodes values in \[-1, 1\]"),
])
def test_values_outside_the_range_are_a_clear_error(enc, bad, match):
    x = np.zeros((3, 4))
    x[1, 2] = bad
    with pytest.raises(EncodingRangeError, match=match):
        enc.encode(x)


def test_non_finite_values_are_a_clear_error():
    with pytest.raises(EncodingRangeError, match=r"non-finite value at sample 0, feature 1.*NaN"):
        AngleEncoder(Q4).encode([[0.0, np.nan, 0.0, 0.0]])


def test_angle_encoder_custom_range_accepts_it():
    enc = AngleEncoder(Q4, scale=1.0, value_range=(0.0, np.pi))
    assert len(enc.encode([[0.0, 1.0, 2.0, np.pi]])) == 1
    with pytest.raises(EncodingRangeError):
        enc.encode([[-0.5, 0, 0, 0]])


def test_bad_encoder_options_are_clear_errors():
    with pytest.raises(QuantumConfigError, match="axis must be 'x' or 'y', got 'z'"):
        AngleEncoder(Q4, axis="z")
    with pytest.raises(QuantumConfigError, match="reps must be at least 1"):
        IQPEncoder(Q4, reps=0)
    with pytest.raises(QuantumConfigError, match="entanglement must be 'linear' or 'full'"):
        IQPEncoder(Q4, entanglement="ring")
    with pytest.raises(QubitCountError, match="at least 1 qubit"):
        BasisEncoder(0)
    with pytest.raises(QubitCountError, match="distinct"):
        BasisEncoder([Q4[0], Q4[0]])
    assert BasisEncoder(3).qubits == cirq.GridQubit.rect(1, 3)


def test_config_is_plain_json():
    import json

    cfg = IQPEncoder(Q4, reps=3).get_config()
    assert json.loads(json.dumps(cfg))["reps"] == 3 and cfg["kind"] == "iqp"
    assert cirq.read_json(json_text=json.dumps(cfg["qubits"])) == Q4
