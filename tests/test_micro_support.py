"""Every row of converters.micro_support still fails in TFLite Micro, for the reason it states."""
import functools

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters.micro_support import MICRO_UNSUPPORTED, unsupported_case
from edgezoo.converters.quantize import convert
from edgezoo.converters.rewrites import apply_micro_rewrites
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops, run_many
from edgezoo.base.errors import UnsupportedOpsError

NOW_RUNS = "now runs on TFLite Micro: remove its row from micro_support"
MICRO_ZOO = ["cswin_micro", "perceiver_io_micro", "perceiver_micro", "resnest_micro", "vit_micro"]


def build(row):
    """The tiny Keras model a row describes."""
    if row["kind"] == "activation":
        inp = keras.Input((16,))
        h = keras.layers.Activation(row["name"])(keras.layers.Dense(16)(inp))
        return keras.Model(inp, keras.layers.Dense(4)(h))
    if row["kind"] == "tf_op":
        fn = functools.reduce(getattr, row["name"].split("."), tf)
        inp = keras.Input((16,))
        return keras.Model(inp, keras.layers.Dense(4)(fn(keras.layers.Dense(16)(inp))))
    if row["kind"] == "transpose":
        inp = keras.Input(tuple(row["input_shape"]))
        return keras.Model(inp, keras.layers.Permute(tuple(row["perm"][1:]))(inp))
    if row["kind"] == "model":
        from edgezoo.zoo import create_model

        return create_model(row["name"])
    raise AssertionError(f"unknown kind {row['kind']!r} in row {row['case']!r}")


def _attempt(model):
    """Micro rewrites, int8 conversion, the static check: (bytes, parsed, error or None, stage)."""
    rewritten, _ = apply_micro_rewrites(model)
    x = np.random.default_rng(0).normal(size=(16, *model.input_shape[1:])).astype(np.float32)
    try:
        data = convert(rewritten, "int8", x, micro=True)
    except Exception as err:  # the TFLite converter raises its own error types
        return None, None, err, "convert"
    parsed = read_tflite(data)
    try:
        check_micro_ops(parsed)
    except UnsupportedOpsError as err:
        return data, parsed, err, "check"
    return data, parsed, None, "run"


@pytest.fixture(scope="module")
def outcomes():
    """{case: (stage reached, error)} for every row; the rows that pass the checks run in one child."""
    found, runners = {}, {}
    for row in MICRO_UNSUPPORTED:
        data, parsed, error, stage = _attempt(build(row))
        found[row["case"]] = (stage, error)
        if error is None:
            runners[row["case"]] = MicroRunner(data, parsed, check_ops=False)
    results = run_many(list(runners.values()), samples=2)
    for case, result in zip(runners, results):
        found[case] = ("run", result.error)
    return found


def test_table_is_well_formed():
    cases = [row["case"] for row in MICRO_UNSUPPORTED]
    assert len(cases) == len(set(cases))
    for row in MICRO_UNSUPPORTED:
        assert row["fails_at"] in ("convert", "check", "run"), row["case"]
        assert row["op"] and row["reason"], row["case"]
        assert row["case"].startswith(row["kind"] + ":"), row["case"]
    assert unsupported_case("activation:exponential")["op"] == "EXP"
    assert unsupported_case("activation:relu") is None


@pytest.mark.parametrize("case", [row["case"] for row in MICRO_UNSUPPORTED])
def test_row_still_fails_for_its_reason(case, outcomes):
    row = unsupported_case(case)
    stage, error = outcomes[case]
    if error is None:
        pytest.fail(f"{case} {NOW_RUNS}")
    assert stage == row["fails_at"], f"{case}: fails at {stage}, the row says {row['fails_at']}: {error}"
    if stage == "convert":
        assert row["op"].lower() in str(error).lower(), f"{case}: {error}"
    else:
        assert isinstance(error, UnsupportedOpsError), f"{case}: {type(error).__name__}: {error}"
        assert row["op"] in [p["op"] for p in error.problems], f"{case}: {error}"


def test_a_case_that_runs_is_reported_for_removal():
    """The check itself: a supported activation put in a row's place is caught as running."""
    data, parsed, error, stage = _attempt(build({"kind": "activation", "name": "tanh", "case": "x"}))
    assert (error, stage) == (None, "run")
    result = run_many([MicroRunner(data, parsed, check_ops=False)], samples=1)[0]
    assert result.error is None  # so test_row_still_fails_for_its_reason would fail with NOW_RUNS


@pytest.mark.slow
@pytest.mark.parametrize("name", MICRO_ZOO)
def test_zoo_micro_models_match_the_table(name):
    """Zoo micro models without a row convert to int8 and run; those with one fail as stated."""
    from edgezoo.zoo import list_models

    assert name in list_models()
    row = unsupported_case(f"model:{name}")
    data, parsed, error, stage = _attempt(build({"kind": "model", "name": name, "case": name}))
    if error is None:
        error = run_many([MicroRunner(data, parsed, check_ops=False)], samples=1)[0].error
    if row is None:
        assert error is None, f"{name} fails on TFLite Micro ({error}): add a row to micro_support"
    elif error is None:
        pytest.fail(f"model:{name} {NOW_RUNS}")
