"""pytest plugin: ``@pytest.mark.edgezoo_device("nrf52840")`` and the ``edge_check`` fixture.

A user's test says in a few lines that a .tflite runs on a board: it loads
safely, its ops exist in the board's runtime, it fits flash and RAM, TFLite
Micro agrees with LiteRT's reference kernels within ±1 LSB, and (given a Keras
model and data) the int8 model agrees with it on top-1. Registered through the
``pytest11`` entry point ``edgezoo``; heavy imports wait until a check runs.
"""
import pytest

MARKER = "edgezoo_device"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name, profiles=None): the board (an edgezoo device profile) that the edge_check "
        "fixture checks a .tflite against; profiles: a JSON file of extra profiles",
    )


def _random_inputs(details, samples, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    if details.dtype in ("INT8", "INT16", "UINT8"):
        info = np.iinfo(np.dtype(details.dtype.lower()))
        return rng.integers(info.min, int(info.max) + 1, (samples, *details.shape[1:])).astype(info.dtype)
    return rng.standard_normal((samples, *details.shape[1:])).astype(np.float32)


def _top1(outputs):
    import numpy as np

    return np.asarray(outputs).reshape(len(outputs), -1).argmax(-1)


class EdgeCheck:
    """Callable behind the ``edge_check`` fixture; ``device`` comes from the test's marker."""

    def __init__(self, device=None, profiles=None):
        self.device, self.profiles = device, profiles

    def __call__(self, tflite, *, keras_model=None, x=None, labels=None, device=None, samples=32,
                 seed=0, max_lsb=1, max_lsb_default=8, top1_agreement=0.95, max_estimated_ms=None):
        """Check ``tflite`` (a path or bytes) on the board; fail the test naming every miss.

        ``x``: float samples (quantized here) or already-quantized ones; without
        it, ``samples`` seeded random inputs. ``keras_model`` (needs float ``x``):
        the int8 model must agree with it on top-1 for at least ``top1_agreement``
        of ``x``. Boards running LiteRT (not TFLite Micro) compare its default
        kernels, which round differently and drift a few LSB over layers, with
        its reference ones within ``max_lsb_default``. Returns what was measured.
        """
        try:
            return self._check(tflite, keras_model, x, labels, device or self.device, samples, seed,
                               max_lsb, max_lsb_default, top1_agreement, max_estimated_ms)
        except _Failed as failed:
            message = str(failed)
        pytest.fail(message, pytrace=False)

    def _check(self, tflite, keras_model, x, labels, device, samples, seed, max_lsb, max_lsb_default,
               top1_agreement, max_estimated_ms):
        import numpy as np

        from edgezoo.edge.budget import check_budget
        from edgezoo.edge.latency_model import estimate_latency
        from edgezoo.edge.loader import load_tflite
        from edgezoo.edge.profiles import ProfileError, get_profile
        from edgezoo.edge.runners.litert import LiteRTRunner
        from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops
        from edgezoo.errors import EdgezooError

        if device is None:
            raise _Failed(f"edge_check needs a board: mark the test @pytest.mark.{MARKER}('nrf52840') "
                          "or pass device=")
        if keras_model is not None and (x is None or np.asarray(x).dtype.kind != "f"):
            raise _Failed("edge_check(keras_model=...) needs float samples x to compare on")
        name = tflite if isinstance(tflite, (bytes, bytearray)) else str(tflite)
        label = "the model" if isinstance(name, (bytes, bytearray)) else name
        try:
            profile = get_profile(device, extra=self.profiles)
            data, model = load_tflite(tflite)
            if x is None:
                x = _random_inputs(model.inputs[0], samples, seed)
            result = {"device": profile.name, "runtime": profile.runtime, "tflite_bytes": len(data),
                      "samples": int(len(x))}
            failures = []
            if profile.micro:
                check_micro_ops(model)
                micro = MicroRunner(data, model)
                out = micro.run(x)
                reference = LiteRTRunner(data, model, "reference").run(x)
                lsb = np.abs(out.astype(np.int64) - reference.astype(np.int64))
                result["max_lsb"] = int(lsb.max()) if lsb.size else 0
                result["arena_bytes"] = micro.arena_bytes
                if result["max_lsb"] > max_lsb:
                    failures.append(f"TFLite Micro differs from LiteRT's reference kernels by up to "
                                    f"{result['max_lsb']} LSB (allowed: {max_lsb}) on {len(x)} inputs")
            else:  # the board runs LiteRT's default kernels: compare them with the reference ones
                out = LiteRTRunner(data, model, "default").run(x)
                reference = LiteRTRunner(data, model, "reference").run(x)
                lsb = np.abs(out.astype(np.int64) - reference.astype(np.int64))
                result["default_vs_reference_max_lsb"] = int(lsb.max()) if lsb.size else 0
                result["default_vs_reference_top1"] = float((_top1(out) == _top1(reference)).mean())
                if result["default_vs_reference_max_lsb"] > max_lsb_default:
                    failures.append(f"LiteRT's default kernels differ from its reference kernels by up to "
                                    f"{result['default_vs_reference_max_lsb']} LSB (allowed: "
                                    f"{max_lsb_default}) on {len(x)} inputs")
            budget = check_budget(profile, len(data), result.get("arena_bytes"))
            result["fits"], result["budget"] = budget["fits"], budget
            for part in ("flash", "ram"):
                b = budget[part]
                if not b["fits"]:
                    failures.append(f"does not fit {profile.name}'s {part.upper() if part == 'ram' else part}:"
                                    f" {b['used_bytes']:,} of {b['capacity_bytes']:,} bytes")
            if keras_model is not None:
                expected = np.asarray(keras_model.predict(np.asarray(x), verbose=0))
                result["top1_agreement"] = float((_top1(out) == _top1(expected)).mean())
                if result["top1_agreement"] < top1_agreement:
                    failures.append(f"the int8 model agrees with the Keras model on top-1 for "
                                    f"{100 * result['top1_agreement']:.1f} % of {len(x)} samples "
                                    f"(needed: {100 * top1_agreement:.1f} %)")
            if labels is not None:
                result["accuracy"] = float((_top1(out) == np.asarray(labels)).mean())
            try:
                estimate = estimate_latency(model, profile, data)
            except ProfileError:
                estimate = None
            if estimate is not None:
                result["latency_estimate_ms"] = estimate.ms
                result["macs"] = estimate.macs
                if max_estimated_ms is not None and estimate.ms > max_estimated_ms:
                    failures.append(f"estimated latency {estimate.ms:.1f} ms on {profile.name} exceeds "
                                    f"{max_estimated_ms} ms (an estimate from MACs, not a measurement)")
        except EdgezooError as exc:
            raise _Failed(f"{label} cannot run on {device}: {exc}") from None
        if failures:
            raise _Failed(f"{label} on {profile.name}:\n" + "\n".join(f"  - {f}" for f in failures))
        return result


class _Failed(Exception):
    pass


@pytest.fixture
def edge_check(request):
    """Check a .tflite on the board named by ``@pytest.mark.edgezoo_device(...)``."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return EdgeCheck()
    device = marker.args[0] if marker.args else marker.kwargs.get("name")
    return EdgeCheck(device, marker.kwargs.get("profiles"))
