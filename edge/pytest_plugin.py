"""pytest plugin: ``@pytest.mark.edgezoo_device("nrf52840")`` and the ``edge_check`` fixture.

A user's test says in a few lines that a .tflite runs on a board, through
edgezoo's one verification path (``edgezoo.edge.verify``, as ``edgezoo test``):
it loads safely, its ops exist in the board's runtime, it fits flash and RAM
with an arena TFLite Micro really runs with, TFLite Micro agrees with LiteRT's
reference kernels op by op, and (given a Keras model and data) the int8 model
agrees with it on top-1. Registered through the ``pytest11`` entry point
``edgezoo``; heavy imports wait until a check runs.

A relative .tflite path given to ``edge_check``, and a relative ``profiles=`` path in
the marker, are resolved against the folder of the test file (as a test's data files
sit beside it), not the directory pytest was started in.
"""
import os
from pathlib import Path

import pytest

MARKER = "edgezoo_device"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name, profiles=None): the board (an edgezoo device profile) that the edge_check "
        "fixture checks a .tflite against; profiles: a JSON file of extra profiles",
    )


class EdgeCheck:
    """Callable behind the ``edge_check`` fixture; ``device`` comes from the test's marker.

    ``base``: the folder relative paths are resolved against (the fixture passes the test
    file's folder; None: the current directory).
    """

    def __init__(self, device=None, profiles=None, base=None):
        self.device, self.base = device, None if base is None else Path(base)
        self.profiles = None if profiles is None else self._resolve(profiles)

    def _resolve(self, path):
        path = Path(path)
        return path if path.is_absolute() or self.base is None else self.base / path

    def __call__(self, tflite, *, keras_model=None, x=None, labels=None, device=None, samples=32,
                 seed=0, task=None, **thresholds):
        """Check ``tflite`` (a path or bytes) on the board; fail the test naming every miss.

        Runs edgezoo's one verification path (``edgezoo.edge.verify``), the same
        as ``edgezoo convert`` and ``edgezoo test``. ``x``: float samples
        (quantized here) or already-quantized ones (a list or a dict by input name
        for a model with several inputs; int32 token ids as they are); without it,
        ``samples`` seeded random inputs. ``keras_model`` (needs ``x``): the int8
        model must agree with it by its task's measure (``task``: a task name;
        default the Keras model's, top-1 for a classifier). ``thresholds``: any field of
        ``edgezoo.edge.verification.Thresholds`` (``top1_agreement``, ``max_lsb_default``,
        ``max_estimated_ms``, ...) overriding its default. Returns what was measured.
        """
        try:
            return self._check(tflite, keras_model, x, labels, device or self.device, samples, seed,
                               thresholds, task)
        except _Failed as failed:
            message = str(failed)
        pytest.fail(message, pytrace=False)

    def _check(self, tflite, keras_model, x, labels, device, samples, seed, thresholds, task):
        from edgezoo.zoo.data.arrays import input_list

        from edgezoo.edge.loader import load_tflite
        from edgezoo.edge.profiles import get_profile
        from edgezoo.edge.verification import DEFAULT_THRESHOLDS, random_inputs, verify
        from edgezoo.base.errors import EdgezooError

        if device is None:
            raise _Failed(f"edge_check needs a board: mark the test @pytest.mark.{MARKER}('nrf52840') "
                          "or pass device=")
        if keras_model is not None and (x is None or any(
                a.dtype.kind not in "f" and not (a.dtype.kind in "iu" and t.dtype.is_integer)
                for a, t in zip(input_list(x, keras_model.input_names), keras_model.inputs))):
            raise _Failed("edge_check(keras_model=...) needs float samples x to compare on "
                          "(int32 token ids for integer inputs)")
        label = "the model" if isinstance(tflite, (bytes, bytearray)) else str(tflite)
        where = "" if self.base is None else f" (a relative path is resolved against {self.base})"
        if isinstance(tflite, (str, os.PathLike)):
            given, tflite = tflite, self._resolve(tflite)
            if not tflite.is_file():
                raise _Failed(f"{given}: no such file: {tflite.absolute()}{where}")
        if self.profiles is not None and not self.profiles.is_file():
            raise _Failed(f"the profiles file {self.profiles.absolute()} does not exist{where}")
        try:
            limits = DEFAULT_THRESHOLDS.replace(**thresholds)
            profile = get_profile(device, extra=self.profiles)
            data, model = load_tflite(tflite)
            real = x is not None
            names = None if keras_model is None else keras_model.input_names
            if x is None:
                x = random_inputs(list(model.inputs), samples, seed)
                x = x[0] if len(x) == 1 else x
            expected, task = None, task
            if keras_model is not None:
                from edgezoo.zoo.tasks import task_of

                task = task_of(keras_model, task)
                xs = input_list(x, names)
                expected = keras_model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
            result = verify(data, model, profile, x, float_outputs=expected, labels=labels,
                            thresholds=limits, real_data=real, task=task, input_names=names)
        except EdgezooError as exc:
            raise _Failed(f"{label} cannot run on {device}: {exc}") from None
        result.update({"device": profile.name, "tflite_bytes": len(data)})
        if "micro_vs_reference_per_op" in result["checks"]:
            result["max_lsb"] = result["checks"]["micro_vs_reference_per_op"]["value"]
        if "default_vs_reference_max_lsb" in result.get("runtimes", {}):
            result["default_vs_reference_max_lsb"] = result["runtimes"]["default_vs_reference_max_lsb"]
        if "agreement" in result and result["task"] == "classification":
            result["top1_agreement"] = result["agreement"]["value"]
        if "accuracy" in result:
            result["accuracy"] = next(v for k, v in result["accuracy"].items() if k != "float")
        if "estimate_ms" in result.get("latency_estimate", {}):  # None, with a reason, when dropped
            result["latency_estimate_ms"] = result["latency_estimate"]["estimate_ms"]
        if not result["passed"]:
            raise _Failed(f"{label} on {profile.name}:\n" +
                          "\n".join(f"  - {f}" for f in result["failures"]))
        return result


class _Failed(Exception):
    pass


@pytest.fixture
def edge_check(request):
    """Check a .tflite on the board named by ``@pytest.mark.edgezoo_device(...)``."""
    base = _test_folder(request)
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return EdgeCheck(base=base)
    device = marker.args[0] if marker.args else marker.kwargs.get("name")
    return EdgeCheck(device, marker.kwargs.get("profiles"), base=base)


def _test_folder(request):
    """The folder of the test file using the fixture (``node.path``, pytest >= 7; else fspath)."""
    path = getattr(request.node, "path", None) or getattr(request, "fspath", None)
    return None if path is None else Path(str(path)).resolve().parent
