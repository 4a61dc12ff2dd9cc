"""Export bundle of a trained hybrid model, for running its parts elsewhere.

``out_dir/manifest.json`` lists everything; classical parts are TFLite (through
``edgezoo.converters``); each quantum layer gets its circuit as Cirq JSON, its trained
parameters as JSON (symbol → value), and the resolved circuit as OpenQASM 2 and 3.
"""
import json

import cirq
import numpy as np

from edgezoo.base import files
from edgezoo.quantum.errors import QuantumConfigError, UnresolvedSymbolsError

FORMAT = "edgezoo.quantum.export/1"


def strip_noise(circuit):
    """The circuit without its non-unitary channels (QASM cannot express them)."""
    moments = [cirq.Moment(op for op in m if cirq.has_unitary(op) or cirq.is_parameterized(op)) for m in circuit]
    return cirq.Circuit(m for m in moments if m.operations)


def resolve(circuit, values):
    """``circuit`` with every symbol replaced by ``values[name]``; missing ones raise."""
    names = {str(s) for s in cirq.parameter_names(circuit)}
    missing = sorted(names - set(values))
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise UnresolvedSymbolsError(
            f"the circuit has {len(missing)} symbol(s) with no value: {shown}; give values for them "
            "(symbol_values={name: value}) or export without QASM (qasm=False)"
        )
    resolved = cirq.resolve_parameters(circuit, {k: float(v) for k, v in values.items() if k in names})
    if cirq.is_parameterized(resolved):
        raise UnresolvedSymbolsError(f"the circuit is still parameterized after resolving: "
                                     f"{sorted(map(str, cirq.parameter_names(resolved)))}")
    return resolved


def qasm_texts(circuit, values):
    """(OpenQASM 2.0, OpenQASM 3.0) of ``circuit`` resolved with ``values`` (noise dropped)."""
    resolved = resolve(strip_noise(circuit), values)
    return cirq.qasm(resolved), cirq.qasm(resolved, args=cirq.QasmArgs(version="3.0"))


def export_circuit(circuit, values, out_dir, observables=(), qasm=True):
    """Write circuit.json, parameters.json and (``qasm``) circuit.qasm / circuit.qasm3; return names."""
    from pathlib import Path

    out_dir = Path(out_dir)
    written = {"circuit": "circuit.json", "parameters": "parameters.json"}
    texts = qasm_texts(circuit, values) if qasm else None
    files.write_text(out_dir / "circuit.json", cirq.to_json(circuit))
    files.write_text(out_dir / "parameters.json", json.dumps({k: float(v) for k, v in sorted(values.items())},
                                                            indent=2))
    if observables:
        files.write_text(out_dir / "observables.json", cirq.to_json(list(observables)))
        written["observables"] = "observables.json"
    if texts:
        files.write_text(out_dir / "circuit.qasm", texts[0])
        files.write_text(out_dir / "circuit.qasm3", texts[1])
        written.update(qasm2="circuit.qasm", qasm3="circuit.qasm3")
    return written


def _tflite(submodel, quantize, calibration):
    from edgezoo.converters.quantize import convert

    return convert(submodel, quantize, calibration)


def _feed(model, tensors, calibration):
    """Values of ``tensors`` for the calibration inputs of ``model``."""
    import tf_keras as keras

    if calibration is None:
        return None
    out = keras.Model(model.inputs, tensors)(calibration)
    return np.asarray(out[0] if isinstance(out, list) and len(out) == 1 else out)


def export(model, out_dir, *, quantize="none", calibration=None, symbol_values=None, qasm=True,
           encoder=None):
    """Write the export bundle of ``model`` to ``out_dir`` and return the manifest.

    ``calibration``: samples of the model's inputs (needed for ``quantize='int8'``).
    ``symbol_values``: values for symbols set at run time (ControlledPQC, re-uploading),
    needed for their QASM. ``encoder``: recorded in the manifest (how to encode inputs).
    """
    import tensorflow as tf
    import tf_keras as keras
    from pathlib import Path

    from edgezoo.quantum._tfq import require_tfq
    from edgezoo.quantum.layers import QUANTUM_LAYERS, ControlledPQC, NoisyPQC, ReUploadingPQC

    tfq = require_tfq()
    qlayers = [l for l in model.layers if isinstance(l, QUANTUM_LAYERS)]
    if not qlayers:
        raise QuantumConfigError(f"model {model.name!r} has no edgezoo quantum layer to export; build it with "
                                 "edgezoo.quantum.factories (TFQ's own layers cannot be exported)")
    if quantize != "none" and calibration is None:
        raise QuantumConfigError(f"quantize={quantize!r} needs calibration samples of the model's inputs")
    out_dir = Path(out_dir)
    extra = dict(symbol_values or {})
    manifest = {"format": FORMAT, "model": model.name,
                "inputs": [{"name": t.name.split(":")[0], "dtype": t.dtype.name, "shape": list(t.shape[1:])}
                           for t in model.inputs],
                "quantum_layers": [], "classical": {},
                "versions": {"cirq": cirq.__version__, "tensorflow_quantum": tfq.__version__,
                             "tensorflow": tf.__version__},
                "simulation": "expectations were computed by TFQ's CPU state-vector simulator"}
    if encoder is not None:
        manifest["encoder"] = encoder.get_config()
    # Resolve and check every circuit before writing anything.
    plans = []
    for layer in qlayers:
        circuit = layer.circuit
        if isinstance(layer, ControlledPQC):
            values, runtime = {}, layer.symbol_names
        elif isinstance(layer, ReUploadingPQC):
            values = layer.parameter_values()
            runtime = [s for row in layer.input_symbols for s in row]
        else:
            values, runtime = layer.parameter_values(), []
        values.update({k: v for k, v in extra.items() if k in runtime})
        if qasm:
            qasm_texts(circuit, values)
        plans.append((layer, circuit, values, runtime))
    for layer, circuit, values, runtime in plans:
        written = export_circuit(circuit, values, out_dir / "quantum" / layer.name, layer.observables, qasm)
        entry = {"name": layer.name, "type": type(layer).__name__,
                 "files": {k: f"quantum/{layer.name}/{v}" for k, v in written.items()},
                 "qasm_qubit_order": [str(q) for q in sorted(circuit.all_qubits())],
                 "observables": [str(o) for o in layer.observables],
                 "trained_symbols": layer.symbol_names if not isinstance(layer, ControlledPQC) else [],
                 "runtime_symbols": runtime,
                 "repetitions": layer.get_config().get("repetitions"),
                 "differentiator": layer.get_config().get("differentiator")}
        if isinstance(layer, NoisyPQC):
            entry["noise"] = sorted({repr(op.gate) for op in circuit.all_operations() if not cirq.has_unitary(op)
                                     and not cirq.is_parameterized(op)})
            entry["qasm_note"] = "QASM files hold the circuit without its noise channels"
        if isinstance(layer, ReUploadingPQC):
            scales = layer.scales.numpy()
            entry["input_scales"] = {s: float(v) for row, srow in zip(layer.input_symbols, scales)
                                     for s, v in zip(row, srow)}
            entry["runtime_rule"] = "input symbol in{l}_{i} = input_scales[in{l}_{i}] * x_i"
        if isinstance(layer, ControlledPQC):
            entry["runtime_rule"] = "symbol_names[k] = controller output k"
            entry["symbol_names"] = layer.symbol_names
        manifest["quantum_layers"].append(entry)

    q_outputs = [l.output for l in qlayers]
    if not any(o is t for o in q_outputs for t in model.outputs):  # a classical head follows
        head = keras.Model(q_outputs, model.outputs, name=f"{model.name}_head")
        files.write_bytes(out_dir / "head.tflite",
                          _tflite(head, quantize, _feed(model, q_outputs, calibration)))
        manifest["classical"]["head"] = {"file": "head.tflite", "quantize": quantize,
                                         "inputs": [l.name for l in qlayers],
                                         "input_shape": [list(o.shape[1:]) for o in q_outputs]}
    for layer in qlayers:
        if isinstance(layer, ControlledPQC):
            features = [t for t in model.inputs if t.dtype != tf.string]
            controller = keras.Model(features, layer.input[1], name=f"{model.name}_controller")
            calib = None if calibration is None else np.asarray(calibration[1])
            files.write_bytes(out_dir / "controller.tflite", _tflite(controller, quantize, calib))
            manifest["classical"]["controller"] = {"file": "controller.tflite", "quantize": quantize,
                                                   "feeds": layer.name}
    files.write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2))
    return manifest
