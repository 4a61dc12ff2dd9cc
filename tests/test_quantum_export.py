"""Export bundle: TFLite heads, Cirq JSON, parameters, OpenQASM 2 and 3, and their round trips."""
import json

import cirq
import numpy as np
import openqasm3
import pytest
import sympy
from ai_edge_litert.interpreter import Interpreter
from cirq.contrib.qasm_import import circuit_from_qasm

from edgezoo.quantum import export
from edgezoo.quantum import factories as F
from edgezoo.quantum.ansatze import hardware_efficient, qcnn, readout_ansatz
from edgezoo.quantum.encoders import AngleEncoder, ReUploadingEncoder
from edgezoo.quantum.errors import QuantumConfigError, UnresolvedSymbolsError
from edgezoo.quantum.bundle import export_circuit, qasm_texts

Q = cirq.GridQubit.rect(1, 3)
X = np.array([[0.1, -0.4, 0.8], [0.5, 0.2, -0.9], [-1.0, 0.0, 1.0]], np.float32)
ENC = AngleEncoder(Q)


def _tflite_run(path, x):
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    out = []
    for row in x:
        it.set_tensor(it.get_input_details()[0]["index"], row[None].astype(np.float32))
        it.invoke()
        out.append(it.get_tensor(it.get_output_details()[0]["index"])[0])
    return np.array(out)


@pytest.fixture(scope="module")
def hybrid_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    model = F.hybrid_classifier(readout_ansatz(Q), hidden=(4,), seed=5)
    manifest = export(model, out, encoder=ENC)
    return model, out, manifest


def test_bundle_files_and_manifest(hybrid_bundle):
    model, out, manifest = hybrid_bundle
    assert json.loads((out / "manifest.json").read_text()) == manifest
    layer = manifest["quantum_layers"][0]
    for rel in list(layer["files"].values()) + [manifest["classical"]["head"]["file"]]:
        assert (out / rel).is_file(), rel
    assert layer["type"] == "PQC" and layer["trained_symbols"] == readout_ansatz(Q).symbols
    assert layer["qasm_qubit_order"][0] == "q(-1, -1)"
    assert manifest["encoder"]["kind"] == "angle" and manifest["versions"]["cirq"] == cirq.__version__
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_parameters_json_holds_the_trained_values(hybrid_bundle):
    model, out, manifest = hybrid_bundle
    params = json.loads((out / manifest["quantum_layers"][0]["files"]["parameters"]).read_text())
    assert params == pytest.approx(model.get_layer("pqc").parameter_values(), abs=0)


def test_tflite_head_matches_keras(hybrid_bundle):
    model, out, _ = hybrid_bundle
    expectations = model.get_layer("pqc")(ENC.to_tensor(X)).numpy()
    head = keras_head_outputs(model, expectations)
    np.testing.assert_allclose(_tflite_run(out / "head.tflite", expectations), head, atol=1e-5)
    np.testing.assert_allclose(head, model(ENC.to_tensor(X)).numpy(), atol=1e-6)


def keras_head_outputs(model, x):
    for layer in model.layers[2:]:
        x = layer(x)
    return np.asarray(x)


def test_cirq_json_round_trip_gives_the_same_unitary(hybrid_bundle):
    model, out, manifest = hybrid_bundle
    files = manifest["quantum_layers"][0]["files"]
    circuit = cirq.read_json(out / files["circuit"])
    params = json.loads((out / files["parameters"]).read_text())
    assert circuit == model.get_layer("pqc").circuit
    a = cirq.unitary(cirq.resolve_parameters(circuit, params))
    b = cirq.unitary(cirq.resolve_parameters(model.get_layer("pqc").circuit, model.get_layer("pqc").parameter_values()))
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_qasm2_round_trip_gives_the_same_unitary(hybrid_bundle):
    model, out, manifest = hybrid_bundle
    layer = model.get_layer("pqc")
    text = (out / manifest["quantum_layers"][0]["files"]["qasm2"]).read_text()
    assert "OPENQASM 2.0;" in text
    expected = cirq.unitary(cirq.resolve_parameters(layer.circuit, layer.parameter_values()))
    assert cirq.allclose_up_to_global_phase(cirq.unitary(circuit_from_qasm(text)), expected, atol=1e-6)


def test_qasm3_export_parses(hybrid_bundle):
    _, out, manifest = hybrid_bundle
    text = (out / manifest["quantum_layers"][0]["files"]["qasm3"]).read_text()
    program = openqasm3.parse(text)
    assert program.version == "3.0"
    assert len(program.statements) > 10


def test_qcnn_qasm_round_trips():
    a = qcnn(cirq.GridQubit.rect(1, 4))
    values = {s: v for s, v in zip(a.symbols, np.random.default_rng(0).uniform(-1, 1, len(a)))}
    q2, q3 = qasm_texts(a.circuit, values)
    expected = cirq.unitary(cirq.resolve_parameters(a.circuit, values))
    assert cirq.allclose_up_to_global_phase(cirq.unitary(circuit_from_qasm(q2)), expected, atol=1e-6)
    openqasm3.parse(q3)


def test_unresolved_symbols_are_a_clear_error(tmp_path):
    a = hardware_efficient(Q, layers=1)
    values = {s: 0.1 for s in a.symbols[:-2]}
    with pytest.raises(UnresolvedSymbolsError, match=r"2 symbol\(s\) with no value: w0_2_y, w0_2_z.*qasm=False"):
        export_circuit(a.circuit, values, tmp_path / "c")
    assert not (tmp_path / "c").exists()  # nothing written before the check
    written = export_circuit(a.circuit, values, tmp_path / "c", qasm=False)
    assert "qasm2" not in written and (tmp_path / "c" / "circuit.json").is_file()


def test_controlled_export_needs_values_for_its_runtime_symbols(tmp_path):
    a = hardware_efficient(Q, layers=1, readout="first")
    model = F.controlled_classifier(a, 3, hidden=(4,), seed=1)
    with pytest.raises(UnresolvedSymbolsError, match="symbol_values"):
        export(model, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    controller = model.get_layer("controller_out")
    sub = type(model)(model.inputs[1], controller.output)
    values = dict(zip(a.symbols, sub(X[:1]).numpy()[0]))
    manifest = export(model, tmp_path / "x", symbol_values=values)
    entry = manifest["quantum_layers"][0]
    assert entry["runtime_symbols"] == a.symbols and "head" not in manifest["classical"]
    np.testing.assert_allclose(_tflite_run(tmp_path / "x" / "controller.tflite", X), sub(X).numpy(), atol=1e-5)
    manifest = export(model, tmp_path / "y", qasm=False)
    assert "qasm2" not in manifest["quantum_layers"][0]["files"]


def test_reuploading_and_noisy_exports(tmp_path):
    enc = ReUploadingEncoder(Q, layers=2)
    model = F.reuploading_classifier(enc, seed=1)
    values = {s: 0.3 for row in enc.input_symbols() for s in row}
    entry = export(model, tmp_path / "r", symbol_values=values)["quantum_layers"][0]
    assert entry["input_scales"]["in1_2"] == pytest.approx(np.pi)
    noisy = F.quantum_classifier(hardware_efficient(Q, layers=1), noise="depolarize:0.01", repetitions=10)
    entry = export(noisy, tmp_path / "n")["quantum_layers"][0]
    assert entry["noise"] == ["cirq.depolarize(p=0.01)"]
    assert "measure" not in (tmp_path / "n" / entry["files"]["qasm2"]).read_text()


def test_int8_export_and_errors(tmp_path):
    model = F.hybrid_classifier(hardware_efficient(Q, layers=1), hidden=(4,), seed=1)
    calib = ENC.to_tensor(np.random.default_rng(0).uniform(-1, 1, (20, 3)))
    manifest = export(model, tmp_path / "q", quantize="int8", calibration=calib)
    assert manifest["classical"]["head"]["quantize"] == "int8"
    assert Interpreter(model_path=str(tmp_path / "q" / "head.tflite")).get_input_details()[0]["dtype"] == np.int8
    with pytest.raises(QuantumConfigError, match="needs calibration samples"):
        export(model, tmp_path / "z", quantize="int8")
    import tf_keras as keras

    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(QuantumConfigError, match="has no edgezoo quantum layer"):
        export(plain, tmp_path / "z")
    bad = cirq.Circuit(cirq.rx(sympy.Symbol("a"))(Q[0]))
    with pytest.raises(UnresolvedSymbolsError, match="1 symbol"):
        qasm_texts(bad, {})
