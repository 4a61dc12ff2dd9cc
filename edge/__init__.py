"""edgezoo.edge: device profiles, safe loading, runtimes, budgets, latency estimates and reports.

Exports load on first use, so importing a light submodule (the pytest plugin,
profiles) does not import TensorFlow.
"""
import importlib

_EXPORTS = {
    "DeviceProfile": "edgezoo.edge.profiles",
    "LiteRTRunner": "edgezoo.edge.runners.litert",
    "MicroRunner": "edgezoo.edge.runners.micro",
    "check_budget": "edgezoo.edge.budget",
    "check_micro_ops": "edgezoo.edge.runners.micro",
    "estimate_latency": "edgezoo.edge.latency_model",
    "get_profile": "edgezoo.edge.profiles",
    "load_profiles": "edgezoo.edge.profiles",
    "load_tflite": "edgezoo.edge.loader",
    "micro_op_table": "edgezoo.edge.micro_ops",
    "model_work": "edgezoo.edge.macs",
    "run_many": "edgezoo.edge.runners.micro",
    "total_macs": "edgezoo.edge.macs",
    "verify": "edgezoo.edge.verification",
    "Thresholds": "edgezoo.edge.verification",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edgezoo.edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
