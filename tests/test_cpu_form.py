"""The int8 form a LiteRT board ships: measured, chosen by a stated rule, refused where it cannot apply."""
import numpy as np
import pytest

import edgezoo  # noqa: F401

from edgezoo.base.errors import RecipeError
from edgezoo.converters.recipe import Recipe
from edgezoo.cpu_form import choose
from edgezoo.edge.verification import DEFAULT_THRESHOLDS


def _latency(**ms):
    return {form: {"median_ms": v, "ms": [v] * 3, "partitions": 1, "bytes": 1} for form, v in ms.items()}


def _agreement(**values):
    return {form: {"value": v, "measure": "top-1", "checks": {"top1_agreement": v}}
            for form, v in values.items()}


def test_fastest_form_that_agrees_ships():
    latency = _latency(dynamic_int8=0.07, full_int8=0.05, float=0.09)
    form, _ = choose(latency, _agreement(dynamic_int8=0.995, full_int8=0.999, float=1.0),
                     DEFAULT_THRESHOLDS)
    assert form == "full_int8"


def test_a_faster_form_that_disagrees_is_not_chosen():
    """Negative control: full int8 is fastest here but agrees 0.97 < 0.98."""
    latency = _latency(dynamic_int8=0.07, full_int8=0.05, float=0.09)
    form, _ = choose(latency, _agreement(dynamic_int8=0.995, full_int8=0.97, float=1.0),
                     DEFAULT_THRESHOLDS)
    assert form == "dynamic_int8"
    form, _ = choose(latency, _agreement(dynamic_int8=0.90, full_int8=0.97, float=1.0),
                     DEFAULT_THRESHOLDS)
    assert form == "float"  # both int8 forms disagree: the float model is the form that agrees


def test_a_tie_goes_to_the_earlier_row():
    """Within 10 % of the fastest, the earlier row (fewer partitions) ships: noise cannot flip it."""
    latency = _latency(dynamic_int8=0.052, full_int8=0.050, float=0.09)
    assert choose(latency, None, DEFAULT_THRESHOLDS)[0] == "dynamic_int8"
    latency = _latency(dynamic_int8=0.060, full_int8=0.050, float=0.09)
    assert choose(latency, None, DEFAULT_THRESHOLDS)[0] == "full_int8"


def test_latency_budget_no_form_meets_is_refused_with_the_numbers():
    latency = _latency(dynamic_int8=0.07, full_int8=0.05, float=0.09)
    agreement = _agreement(dynamic_int8=0.995, full_int8=0.97, float=1.0)
    assert choose(latency, agreement, DEFAULT_THRESHOLDS, max_latency_ms=0.08)[0] == "dynamic_int8"
    with pytest.raises(RecipeError, match=r"max_latency_ms 0.06: .*full_int8 0.050 ms "
                                          r"\(agreement 0.9700\)"):
        choose(latency, agreement, DEFAULT_THRESHOLDS, max_latency_ms=0.06)


@pytest.mark.parametrize("changes, match", [
    (dict(cpu_form="dynamic_int8"), "cpu_form dynamic_int8 is a form for LiteRT"),
    (dict(cpu_form="float"), "cpu_form float is a form for LiteRT"),
    (dict(max_latency_ms=5.0), "max_latency_ms bounds the latency measured in LiteRT"),
])
def test_cpu_forms_are_refused_on_a_microcontroller(changes, match):
    with pytest.raises(RecipeError, match=match):
        Recipe(target="nrf52840", **changes).check_target(micro=True)


@pytest.mark.parametrize("changes, match", [
    (dict(cpu_form="int16_islands"), "unknown cpu_form 'int16_islands'"),
    (dict(cpu_form="dynamic_int8", quantize="float16"), "needs --quantize int8, not float16"),
    (dict(max_latency_ms=-1.0), "max_latency_ms must be a positive number"),
])
def test_bad_cpu_form_options(changes, match):
    with pytest.raises(RecipeError, match=match):
        Recipe(**changes)


def test_cli_refuses_a_cpu_form_for_a_microcontroller_before_any_work(tmp_path, capsys):
    from edgezoo.cli import main

    code = main(["convert", "vit_micro", "--target", "nrf52840", "--cpu-form", "dynamic_int8",
                 "--calib", "digits", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "cpu_form dynamic_int8 is a form for LiteRT" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_rpi4_int8_is_measured_and_the_chosen_form_ships(tmp_path):
    """vit_micro for rpi4: every form converted, timed and compared on the validation split.
    Checked independently: the agreement the report records for each form is recomputed here
    with a plain LiteRT interpreter; the dynamic form stays in the float graph's partitions
    while full int8 splits it; the bytes that ship are the chosen form's."""
    import tf_keras as keras
    from ai_edge_litert.interpreter import Interpreter

    from edgezoo.convert import convert_model
    from edgezoo.converters.quantize import convert
    from edgezoo.edge.profiles import get_profile
    from edgezoo.zoo import create_model, registry_contract
    from edgezoo.zoo.data.sources import load_for_model

    keras.utils.set_random_seed(0)
    model = create_model("vit_micro")
    data = load_for_model("digits", model.input_shape[1:], registry_contract("vit_micro"))
    compressed, parsed = convert_model(model, "int8", get_profile("rpi4"), None,
                                       recipe=Recipe(), data=data)
    form = compressed.report["cpu_form"]
    rows = form["candidates"]
    assert set(rows) == {"dynamic_int8", "full_int8", "float"}
    assert form["chosen_on"].startswith("digits validation split")
    assert rows["dynamic_int8"]["partitions"] <= rows["float"]["partitions"] <= 3
    assert rows["full_int8"]["partitions"] > 10  # int8 LayerNorm, softmax, GELU, BATCH_MATMUL
    float_top1 = model.predict(data.val.x[:512], verbose=0).argmax(-1)
    for name in ("dynamic_int8", "float"):
        interpreter = Interpreter(model_content=convert(model, "dynamic" if name != "float"
                                                        else "none"), num_threads=1)
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        top1 = []
        for sample in data.val.x[:512]:
            interpreter.set_tensor(inp["index"], sample[None].astype(np.float32))
            interpreter.invoke()
            top1.append(interpreter.get_tensor(out["index"]).argmax())
        assert rows[name]["agreement"] == pytest.approx(np.mean(np.array(top1) == float_top1))
    chosen = form["chosen"]
    assert compressed.report["tflite_bytes"] == rows[chosen]["bytes"] == len(compressed.tflite)
    assert compressed.candidates == {}


def test_a_form_the_runtime_cannot_prepare_is_reported_not_chosen(monkeypatch):
    """LiteRT's XNNPACK delegate can fail to prepare one form (seen on a trained
    perceiver_micro's rpi4 conversion): that form is recorded with the error and left out, the
    others are timed and one of them ships; when none can be prepared the recipe is refused."""
    import tf_keras as keras

    import edgezoo.edge.op_latency as op_latency
    from edgezoo.cpu_form import measure_latency
    from edgezoo.converters.quantize import convert

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    candidates = {"dynamic_int8": convert(model, "dynamic"), "float": convert(model, "none")}
    real = op_latency.seeded_interpreter

    def failing(data, seed=0):
        if data == candidates["dynamic_int8"]:
            raise RuntimeError("XNNPack delegate failed to prepare")
        return real(data, seed)

    monkeypatch.setattr(op_latency, "seeded_interpreter", failing)
    latency = measure_latency(candidates, rounds=1, runs=5)
    assert "failed to prepare" in latency["dynamic_int8"]["error"]
    assert latency["float"]["median_ms"] > 0
    assert choose(latency, None, DEFAULT_THRESHOLDS)[0] == "float"
    with pytest.raises(RecipeError, match="cannot prepare any form"):
        choose({"dynamic_int8": latency["dynamic_int8"]}, None, DEFAULT_THRESHOLDS)
