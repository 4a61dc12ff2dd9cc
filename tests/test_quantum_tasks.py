"""Tasks, training beside the classical baseline, and the ``edgezoo quantum`` CLI."""
import json
import subprocess
import sys

import cirq
import numpy as np
import pytest

from edgezoo.cli import main
from edgezoo.quantum.errors import QuantumConfigError
from edgezoo.quantum.tasks import get_task
from edgezoo.quantum.tasks.cluster import excitations
from edgezoo.quantum.tasks.digits import digits_images, remove_contradictory
from edgezoo.quantum.training import train_task


def test_digits_3_vs_6_at_4x4():
    images, labels = digits_images((4, 4))
    assert images.shape == (len(labels), 4, 4) and 350 < len(labels) < 380
    assert images.min() >= 0 and images.max() <= 1
    assert set(np.unique(labels)) == {-1.0, 1.0}
    binary = (images.reshape(len(images), -1) > 0.5).astype(np.float32)
    kept, y = remove_contradictory(binary, labels)
    patterns = {}
    for row, label in zip(map(bytes, kept.astype(np.uint8)), y):
        patterns.setdefault(row, set()).add(label)
    assert all(len(v) == 1 for v in patterns.values()) and 0.6 * len(labels) < len(y) <= len(labels)


def test_small_digits_task_trains_beside_its_baseline():
    task = get_task("digits", size=(3, 3))
    assert task.n_qubits == 10 and task.x_train.shape == (len(task.y_train),)
    model, report = train_task(task, epochs=3, seed=0)
    assert report["params"] == 18 and report["qubits"] == 10
    assert report["val_accuracy"] >= 0.75
    assert report["baseline"]["params"] == pytest.approx(18, abs=6)
    assert report["baseline"]["val_accuracy"] >= 0.5


def test_cluster_excitations_label_small_rotations():
    qubits = cirq.GridQubit.rect(1, 4)
    circuits, labels = excitations(qubits, 40, seed=1)
    for c, y in zip(circuits, labels):
        theta = [op.gate._rads for op in c.all_operations() if isinstance(op.gate, cirq.Rx)]
        assert len(theta) == 1 and (abs(theta[0]) <= np.pi / 2) == (y > 0)
    task = get_task("cluster", n_qubits=4, n_samples=64)
    assert len(task.y_train) == 48 and task.features_train is None
    assert task.build().get_layer("pqc").parameters.shape == (42,)


def test_four_qubit_hybrid_learns_a_separable_task():
    task = get_task("separable", n_features=4, n_samples=200, seed=0)
    model, report = train_task(task, epochs=15, batch_size=16, seed=0)
    assert report["qubits"] == 4 and report["val_accuracy"] >= 0.9
    assert report["baseline"]["val_accuracy"] >= 0.8


def test_quantum_data_task_has_no_classical_baseline():
    task = get_task("quantum_data", n_qubits=3, n_samples=80)
    model, report = train_task(task, epochs=5, batch_size=16)
    assert report["baseline"] is None and report["val_accuracy"] >= 0.9


def test_unknown_task_and_bad_training_options():
    with pytest.raises(QuantumConfigError, match="unknown quantum task 'mnist'; choose one of digits, cluster"):
        get_task("mnist")
    with pytest.raises(QuantumConfigError, match="digits size must be within"):
        get_task("digits", size=(9, 9))
    with pytest.raises(QuantumConfigError, match="epochs and batch_size must be ≥ 1"):
        train_task(get_task("separable"), epochs=0)


def test_cli_train_then_export(tmp_path, capsys):
    assert main(["quantum", "train", "separable", "--epochs", "2", "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model_file"] == str(tmp_path / "separable.keras") and report["baseline"]["params"] > 0
    assert main(["quantum", "export", str(tmp_path / "separable.keras"), "--out", str(tmp_path / "b")]) == 0
    assert "wrote" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["classical"]["head"]["file"] == "head.tflite"
    assert (tmp_path / "b" / "quantum" / "pqc" / "circuit.qasm3").is_file()


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["quantum", "train", "mnist", "--out", str(tmp_path)]) == 2
    assert "edgezoo quantum train: error: unknown quantum task 'mnist'" in capsys.readouterr().err
    assert main(["quantum", "train", "separable", "--noise", "dephase:0.1", "--out", str(tmp_path)]) == 2
    assert "unknown noise channel 'dephase'" in capsys.readouterr().err
    assert main(["quantum", "export", str(tmp_path / "none.keras"), "--out", str(tmp_path)]) == 2
    assert "no model file at" in capsys.readouterr().err
    import tf_keras as keras

    classical = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    classical.save(tmp_path / "classical.keras")
    assert main(["quantum", "export", str(tmp_path / "classical.keras"), "--out",
                 str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "holds no edgezoo quantum layer" in err and "edgezoo convert" in err
    assert err.count("\n") == 1 and not (tmp_path / "c").exists()


def test_classical_cli_does_not_import_tensorflow_quantum():
    code = ("import sys; from edgezoo.cli import build_parser; build_parser(); "
            "print('tensorflow_quantum' in sys.modules, 'cirq' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
