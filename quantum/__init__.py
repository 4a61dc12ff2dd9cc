"""edgezoo.quantum: hybrid quantum-classical classifiers on TensorFlow Quantum (``edgezoo[quantum]``).

Simulation runs on the CPU (TFQ's state-vector simulator); nothing here claims a quantum
advantage on classical data. Names are imported on first use, so ``import edgezoo.quantum``
works without tensorflow-quantum and a missing extra fails with one clear error.
"""
import importlib

_API = {
    "save_model": "saving", "load_model": "saving", "export": "bundle",
    "quantum_classifier": "factories", "hybrid_classifier": "factories",
    "controlled_classifier": "factories", "multi_filter_classifier": "factories",
    "reuploading_classifier": "factories", "quantum_layer": "factories",
    "hinge_labels": "losses", "hinge_accuracy": "losses", "expectation_bce": "losses",
    "classical_baseline": "baseline", "trainable_params": "baseline",
    "train_task": "training", "compile_classifier": "training", "get_task": "tasks", "TASKS": "tasks",
}

__all__ = sorted(_API) + ["encoders", "ansatze", "layers", "errors"]


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(f"edgezoo.quantum.{_API[name]}"), name)
    if name in ("encoders", "ansatze", "layers", "errors", "tasks"):
        return importlib.import_module(f"edgezoo.quantum.{name}")
    raise AttributeError(f"module 'edgezoo.quantum' has no attribute {name!r}")
