"""The one verification path: every gate passes a good model and fails a known violation."""
import json

import numpy as np
import pytest

from edgezoo.edge.loader import load_tflite
from edgezoo.edge.profiles import get_profile
from edgezoo.edge.runners.micro import MicroRunner
from edgezoo.edge.verification import DEFAULT_THRESHOLDS, random_inputs, uninformative_reasons, verify
from edgezoo.base.errors import EdgezooError

from conftest import shifted_micro


@pytest.fixture(scope="module")
def kws(mlperf_dir):
    data, model = load_tflite(mlperf_dir / "kws_ref_model.tflite")
    return data, model, random_inputs(model.inputs[0], 16, seed=0)


@pytest.fixture(scope="module")
def kws_results(kws):
    """The real per-op gate on KWS, and TFLite Micro shifted by 1 and 2 LSB (exact-k checks of
    compare_ops itself: tests/test_op_compare.py)."""
    data, model, x = kws
    profile = get_profile("stm32l4r5")
    return {k: verify(data, model, profile, x, real_data=False,
                      op_micro=None if k is None else shifted_micro(k))
            for k in (None, 1, 2)}


def test_official_kws_passes_every_gate(kws_results):
    result = kws_results[None]
    assert result["passed"], result["failures"]
    assert set(result["checks"]) == {"micro_vs_reference_per_op", "fits"}
    rows = result["per_op"]["ops"]
    assert {r["op"] for r in rows} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert all(r["max_lsb"] == 0 for r in rows if r["op"] != "FULLY_CONNECTED")
    assert result["thresholds"] == DEFAULT_THRESHOLDS.as_dict()
    # the arena budgeted is one TFLite Micro really runs with, not only what it recorded
    arena = result["arena"]
    assert result["arena_bytes"] == max(arena["recorded_bytes"], arena["minimum_bytes"])


@pytest.mark.parametrize("k", [1, 2])
def test_a_runner_shifted_by_k_lsb_is_reported_as_k(kws_results, k):
    """Negative control through the one path: a TFLite Micro off by k LSB everywhere is seen as k."""
    result = kws_results[k]
    rows = result["per_op"]["ops"]
    assert {r["max_lsb"] for r in rows} == {k}  # every op of KWS is exact on these samples
    check = result["checks"]["micro_vs_reference_per_op"]
    assert check["value"] == k and not check["passed"] and not result["passed"]
    first = check["first_failure"]
    # FULLY_CONNECTED tolerates 1 LSB; everything else none: the first op over is op 0 (CONV_2D)
    assert first["index"] == 0 and first["op"] == "CONV_2D" and first["max_lsb"] == k
    assert result["failures"][0].startswith("TFLite Micro differs from LiteRT's reference kernels "
                                            "at op 0 (CONV_2D")
    fc = [r for r in rows if r["op"] == "FULLY_CONNECTED"]
    assert fc and all(r["passed"] == (k <= 1) for r in fc)


def test_agreement_gate_fails_on_disagreeing_float_outputs(kws):
    data, model, x = kws
    profile = get_profile("stm32l4r5")
    micro = MicroRunner(data, model).run(x).astype(np.float32)
    classes = micro.shape[-1]
    # float outputs whose top-1 is the int8 model's on half of the samples, and spread over classes
    wrong = np.eye(classes, dtype=np.float32)[(micro.argmax(-1) + (np.arange(len(x)) % 2)) % classes]
    wrong += np.random.default_rng(0).normal(0, 1e-3, wrong.shape).astype(np.float32)
    result = verify(data, model, profile, x, float_outputs=wrong, real_data=False)
    check = result["checks"]["agreement_top1"]
    assert check["value"] == pytest.approx(0.5) and not check["passed"]
    assert any("agrees with the float model on top-1 for 50.0 % of 16 samples (needed: 98.0 %)" in f
               for f in result["failures"])
    same = np.eye(classes, dtype=np.float32)[micro.argmax(-1)] + wrong * 1e-3
    agreeing = verify(data, model, profile, x, float_outputs=same, real_data=False)
    assert agreeing["checks"]["agreement_top1"] == {"value": 1.0, "limit": 0.98, "passed": True}


def test_uninformative_float_outputs():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(100, 10))
    assert uninformative_reasons(spread) == []
    one_class = spread.copy()
    one_class[:95, 3] += 100.0
    assert "predicts class 3 for 95.0% of the 100 samples" in uninformative_reasons(one_class)[0]
    assert "constant" in uninformative_reasons(np.full((100, 10), 0.1))[0]
    nan = spread.copy()
    nan[5, 2] = np.nan
    assert uninformative_reasons(nan) == ["the float model's outputs contain NaN"]
    ninety = spread.copy()
    ninety[:90, 1] += 100.0  # exactly 90 %: still informative (the bound is "more than")
    ninety[90:, 7] += 100.0
    assert len(uninformative_reasons(ninety)) == 1  # informative by share, but 2 of 10 classes
    assert "falls on only 2 of its 10 classes" in uninformative_reasons(ninety)[0]
    five = spread.copy()
    five[np.arange(100), np.arange(100) % 5] += 100.0  # five classes of ten, evenly: enough
    assert uninformative_reasons(five) == []
    four = spread.copy()
    four[np.arange(100), np.arange(100) % 4] += 100.0
    assert "only 4 of its 10 classes" in uninformative_reasons(four)[0]


def test_uninformative_agreement_fails_even_at_100_percent(kws):
    data, model, x = kws
    micro = MicroRunner(data, model).run(x).astype(np.float32)
    constant = np.tile(micro[:1], (len(x), 1))  # a "float model" with one answer for everything
    micro_one = np.tile(micro[:1], (len(x), 1))
    result = verify(data, model, get_profile("stm32l4r5"), x, float_outputs=constant,
                    real_data=False, micro_runner=_FixedRunner(data, model, micro_one))
    assert result["agreement"]["value"] == 1.0 and not result["agreement"]["informative"]
    assert not result["checks"]["agreement_informative"]["passed"] and not result["passed"]
    assert any(f.startswith("agreement is uninformative") for f in result["failures"])


class _FixedRunner(MicroRunner):
    """A TFLite Micro runner whose end-to-end readout is fixed (the per-op gate runs for real)."""

    def __init__(self, data, model, outputs):
        super().__init__(data, model)
        self._outputs = outputs.astype(np.int8)

    def run_outputs(self, x):
        return [self._outputs[: len(x)]]


def test_default_vs_micro_gate_fails_when_micro_answers_otherwise(kws):
    data, model, x = kws
    real = MicroRunner(data, model).run(x)
    rolled = np.roll(real, 1, axis=-1)  # every top-1 moves to the next class
    result = verify(data, model, get_profile("stm32l4r5"), x,
                    micro_runner=_FixedRunner(data, model, rolled))
    check = result["checks"]["default_vs_micro_top1"]
    assert check["value"] == 0.0 and not check["passed"]


def test_budget_and_latency_gates_fail(kws, tmp_path):
    data, model, x = kws
    boards = tmp_path / "boards.json"
    boards.write_text(json.dumps({"tiny": dict(
        description="too small", core="cortex-m4", clock_mhz=120, flash_bytes=48 * 1024,
        ram_bytes=16 * 1024, flash_reserve_bytes=0, ram_margin_bytes=0, runtime="tflite-micro")}))
    from edgezoo.edge.profiles import get_profile as profile_from

    result = verify(data, model, profile_from("tiny", extra=boards), x, real_data=False,
                    thresholds=DEFAULT_THRESHOLDS.replace(max_estimated_ms=0.001))
    assert not result["checks"]["fits"]["passed"] and not result["checks"]["latency_estimate"]["passed"]
    assert "does not fit tiny's flash: 53,936 of 49,152 bytes" in result["failures"]
    assert any(f.startswith("does not fit tiny's RAM") for f in result["failures"])
    assert result["thresholds"]["max_estimated_ms"] == 0.001


def test_unknown_threshold_is_an_error():
    with pytest.raises(EdgezooError, match=r"unknown thresholds \['top1'\]"):
        DEFAULT_THRESHOLDS.replace(top1=0.5)


# --- LiteRT refusing a model, in its worker process ----------------------------------------

@pytest.fixture(scope="module")
def xnnpack_refused(mlperf_dir):
    """KWS with its first CONV_2D's bias zero point set to 5: the loader, LiteRT's reference
    kernels and TFLite Micro accept it; XNNPACK refuses it at allocate (as bit flips do)."""
    from conftest import with_zero_point

    data, model = load_tflite(with_zero_point((mlperf_dir / "kws_ref_model.tflite").read_bytes(),
                                              "CONV_2D", 2, 5))
    return data, model, random_inputs(model.inputs[0], 8, seed=0)


XNNPACK_REASON = "refused at allocate: unsupported zero-point value (5) in channel 0 of INT32 tensor"


def test_default_kernels_refusing_a_model_fails_a_litert_board(kws, xnnpack_refused):
    """rpi4 ships XNNPACK: a model its default kernels refuse cannot run there."""
    data, model, x = xnnpack_refused
    result = verify(data, model, get_profile("rpi4"), x, real_data=False)
    default = result["runtimes"]["default"]
    assert default["available"] is False and default["reason"].startswith(XNNPACK_REASON)
    assert result["checks"]["litert_default_kernels"] == {"value": False, "limit": True,
                                                          "passed": False,
                                                          "reason": default["reason"]}
    assert not result["passed"] and "default_vs_reference_lsb" not in result["checks"]
    assert result["failures"] == [f"LiteRT default kernels (XNNPACK) unavailable for this model: "
                                  f"{default['reason']}; reference kernels still compared, but "
                                  "rpi4 runs the default ones"]
    # negative control: the unmutated model runs on the default kernels and is compared with them
    data, model, x = kws
    control = verify(data, model, get_profile("rpi4"), x, real_data=False)
    assert control["passed"], control["failures"]
    assert control["runtimes"]["default"] == {"available": True, "reason": None}
    assert control["checks"]["default_vs_reference_lsb"]["value"] <= 8


def test_default_kernels_refusing_a_model_is_a_note_on_a_micro_board(kws_results, xnnpack_refused):
    """nrf52840 never runs XNNPACK: its refusal is recorded, the micro gates decide."""
    data, model, x = xnnpack_refused
    result = verify(data, model, get_profile("nrf52840"), x, real_data=True)
    assert result["passed"], result["failures"]
    reason = result["runtimes"]["default"]["reason"]
    assert reason.startswith(XNNPACK_REASON) and result["runtimes"]["default"]["available"] is False
    assert result["notes"] == [f"LiteRT default kernels (XNNPACK) unavailable for this model: "
                               f"{reason}; reference kernels still compared"]
    assert result["checks"]["micro_vs_reference_per_op"]["passed"]
    assert "default_vs_micro_top1" not in result["checks"]  # nothing to compare, not a coin toss
    control = kws_results[None]  # the unmutated model: no note, the default kernels ran
    assert control["notes"] == [] and control["runtimes"]["default"]["available"] is True


@pytest.mark.parametrize("board", ["rpi4", "nrf52840"])
def test_reference_kernels_refusing_a_model_is_an_error(mlperf_dir, board):
    """A filter zero point LiteRT's reference kernels refuse: nothing can be checked against them."""
    from conftest import with_zero_point

    from edgezoo.edge.runners.litert import LiteRTRefusal

    data, model = load_tflite(with_zero_point((mlperf_dir / "kws_ref_model.tflite").read_bytes(),
                                              "CONV_2D", 1, 5))
    with pytest.raises(LiteRTRefusal, match=r"^LiteRT's reference kernels \(BUILTIN_REF\) refused "
                                            r"this model at allocate: .*conv\.cc:\d+ .*\(5 != 0\); "
                                            r"Node number 0 \(CONV_2D\) failed to prepare; "
                                            r"nothing to compare .* with$") as err:
        verify(data, model, get_profile(board), random_inputs(model.inputs[0], 4, 0),
               real_data=False)
    assert isinstance(err.value, EdgezooError)  # edgezoo test: exit 2; edge_check: a failure


def test_a_litert_crash_ends_the_worker_not_the_caller(kws):
    """A model that segfaults LiteRT is a reason here; the worker restarts for the next model."""
    from test_loader_fuzz import LITERT_CRASHER, mutate

    from edgezoo.edge.runners.litert import IsolatedLiteRTRunner, LiteRTRunner
    from edgezoo.edge.verification import _default_litert

    data, model, x = kws
    crasher = mutate(data, [], LITERT_CRASHER)  # LiteRT dies on it (tests/test_loader_fuzz.py)
    outputs, reason = _default_litert(crasher, model, x)
    assert outputs is None and reason == "crashed (SIGSEGV, in the worker process)"
    isolated = IsolatedLiteRTRunner(data, model, "reference").run(x)
    assert np.array_equal(isolated, LiteRTRunner(data, model, "reference").run(x))


# --- a latency estimate that cannot be made says why ---------------------------------------

_BOARD = dict(description="a LiteRT board", core="cortex-a72", clock_mhz=1500, flash_bytes=2**30,
              ram_bytes=2**30, flash_reserve_bytes=0, ram_margin_bytes=0, runtime="litert")


@pytest.mark.parametrize("fields, reason", [
    ({"clock_mhz": 0}, "board has no clock frequency (clock_mhz 0)"),
    ({"core": "foo"}, "core 'foo' has no cycle model; known: cortex-a72, cortex-m0plus, "
                      "cortex-m4, cortex-m4f, cortex-m7, xtensa-lx7"),
])
def test_a_dropped_latency_estimate_says_why(kws, tmp_path, fields, reason):
    from edgezoo.edge.report import render_markdown

    boards = tmp_path / "boards.json"
    boards.write_text(json.dumps({"board": {**_BOARD, **fields}, "control": _BOARD}))
    data, model, x = kws
    result = verify(data, model, get_profile("board", extra=boards), x, real_data=False)
    assert result["latency_estimate"] == {"estimate_ms": None, "reason": reason}
    assert result["passed"]  # no bound asked for: a fact, not a failure
    assert f"| latency estimate on board | none: {reason} |" in render_markdown(result)
    bound = DEFAULT_THRESHOLDS.replace(max_estimated_ms=1000.0)
    bounded = verify(data, model, get_profile("board", extra=boards), x, real_data=False,
                     thresholds=bound)
    assert bounded["checks"]["latency_estimate"] == {"value": None, "limit": 1000.0,
                                                     "passed": False, "reason": reason}
    assert not bounded["passed"]  # a bound with nothing to hold it to fails, it does not pass
    assert bounded["failures"] == [f"no latency estimate on board to hold to 1000.0 ms: {reason}"]
    # negative control: the same board with its clock and a known core is estimated and passes
    control = verify(data, model, get_profile("control", extra=boards), x, real_data=False,
                     thresholds=bound)
    assert control["passed"], control["failures"]
    assert 0 < control["latency_estimate"]["estimate_ms"] < 1000.0
    assert "reason" not in control["latency_estimate"]
    assert "latency estimate on control (from MACs, not measured)" in render_markdown(control)


def test_a_litert_board_gates_default_against_reference_kernels_on_data(kws, monkeypatch):
    """On data, rpi4's default kernels must give the reference kernels' classes (the task's
    measure); the LSB drift is reported. Negative control: default kernels whose outputs are
    those of other samples fail the gate."""
    from edgezoo.edge import verification

    data, model, x = kws
    result = verify(data, model, get_profile("rpi4"), x, real_data=True)
    assert result["checks"]["default_vs_reference_top1"]["passed"]
    assert "default_vs_reference_lsb" not in result["checks"]
    assert result["runtimes"]["default_vs_reference_max_lsb"] >= 0
    real = verification._default_litert
    monkeypatch.setattr(verification, "_default_litert", lambda *a: (
        [o[::-1] for o in real(*a)[0]], None))
    shuffled = verify(data, model, get_profile("rpi4"), x, real_data=True)
    assert not shuffled["checks"]["default_vs_reference_top1"]["passed"] and not shuffled["passed"]
    assert any(f.startswith("LiteRT's default kernels agree with its reference kernels on top-1 for")
               for f in shuffled["failures"])


def test_a_runtime_failure_names_the_task_measure_it_was_judged_by():
    """A detector's runtimes are compared by its task measure, not top-1: the failure says so."""
    from edgezoo.edge.verification import failure_lines

    check = {"value": 0.973, "limit": 0.99, "passed": False}
    detection = {"checks": {"default_vs_micro_top1": {
        **check, "measure": "per-query class agreement and box IoU"}}, "samples": 500}
    assert failure_lines(detection) == [
        "LiteRT's default kernels agree with TFLite Micro on per-query class agreement and box "
        "IoU (97.3 % on 500 samples) (needed: 99.0 %)"]
    classifier = {"checks": {"default_vs_micro_top1": check}, "samples": 500}
    assert failure_lines(classifier) == [
        "LiteRT's default kernels agree with TFLite Micro on top-1 for 97.3 % of 500 samples "
        "(needed: 99.0 %)"]
