"""The TFLite Micro arena: bisected minimum, proven at both ends, and the header constant above it.

Rule checked for each model (arena_bytes = max(recorded, minimum), margin = 10 %):
    minimum <= EDGEZOO_TENSOR_ARENA_SIZE <= arena_bytes * (1 + margin) + 16
and, directly in TFLite Micro: minimum - 16 fails (negative control), the
minimum and the header constant both prepare and invoke the model.
"""
import re

import numpy as np
import pytest

from edgezoo.converters.c_export import ALIGNMENT, arena_constant, render_header
from edgezoo.converters.tflite_model import quantize_input
from edgezoo.edge.arena import arena_summary, minimum_arena, probe_arenas
from edgezoo.edge.loader import load_tflite
from edgezoo.edge.runners.micro import MicroRunner

from conftest import ad_autoencoder

_CONSTANT = re.compile(r"#define EDGEZOO_TENSOR_ARENA_SIZE (\d+)")


@pytest.fixture(scope="module")
def ad_models():
    from edgezoo.converters.quantize import convert
    from edgezoo.converters.rewrites import apply_micro_rewrites

    model = ad_autoencoder(seed=0)
    calib = np.random.default_rng(0).standard_normal((32, 640)).astype(np.float32)
    rewritten, applied = apply_micro_rewrites(model)
    assert "dense_as_conv1x1" in applied
    return {"ad_fc": convert(model, "int8", calib), "ad_conv1x1": convert(rewritten, "int8", calib)}


@pytest.fixture(scope="module")
def model_bytes(mlperf_dir, ad_models):
    return {"kws": (mlperf_dir / "kws_ref_model.tflite").read_bytes(),
            "ic_resnet": (mlperf_dir / "pretrainedResnet_quant.tflite").read_bytes(), **ad_models}


def _sample(parsed, seed=0):
    """One sample of input 0, quantized to the model's input dtype."""
    details = parsed.inputs[0]
    x = np.random.default_rng(seed).standard_normal(details.shape).astype(np.float32)
    return quantize_input(x, details)


@pytest.mark.parametrize("name", ["kws", "ic_resnet", "ad_fc", "ad_conv1x1"])
def test_minimum_is_exact_and_the_header_constant_runs_the_model(name, model_bytes):
    data, parsed = load_tflite(model_bytes[name])
    sample = _sample(parsed)
    summary = arena_summary(data, parsed, sample)
    minimum, recorded = summary["minimum_bytes"], summary["recorded_bytes"]
    assert minimum % ALIGNMENT == 0 and recorded > 0
    assert summary["probes"] <= 16  # the bisection stays cheap
    assert summary["arena_bytes"] == max(recorded, minimum)
    assert "64-bit host" in summary["note"] and "32-bit" in summary["note"]

    header = render_header(parsed, summary)
    constant = int(_CONSTANT.search(header).group(1))
    assert constant == summary["header_constant"] == arena_constant(recorded, minimum_bytes=minimum)
    assert f"minimum {minimum} B" in header and f"{minimum - ALIGNMENT} B fails" in header
    assert minimum <= constant <= summary["arena_bytes"] * (1 + summary["margin"]) + ALIGNMENT

    # Independent check, each size in its own process: the boundary and the constant.
    probes = probe_arenas(data, sample, [minimum - ALIGNMENT, minimum, constant])
    assert probes[minimum - ALIGNMENT][0] in ("fail", "crash"), probes  # negative control
    assert probes[minimum] == ("ok", ""), probes
    assert probes[constant] == ("ok", ""), probes


def test_recorded_total_can_be_below_what_prepare_needs(model_bytes):
    """Why the header needs the bisected minimum: the 1x1-conv autoencoder records far less
    than CONV_2D Prepare needs, and recorded + 10 % alone would fail on the device."""
    data, parsed = load_tflite(model_bytes["ad_conv1x1"])
    sample = _sample(parsed)
    recorded = MicroRunner(data, parsed).measure_arena()
    minimum = minimum_arena(data, sample, recorded=recorded)
    old_constant = arena_constant(recorded)
    assert old_constant < minimum
    status, detail = probe_arenas(data, sample, [old_constant])[old_constant]
    assert status in ("fail", "crash") and (status == "crash" or "CONV_2D" in detail or
                                           "allocate" in detail), detail
    assert int(_CONSTANT.search(render_header(parsed, recorded, minimum_bytes=minimum))
               .group(1)) >= minimum
