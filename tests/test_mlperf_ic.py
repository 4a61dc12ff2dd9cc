"""Plain int8 of the real MLPerf Tiny IC model (ResNet-8) against its official int8 file."""
import numpy as np
import pytest

from edgezoo.convert import convert_model, load_keras_model
from edgezoo.edge import compare_runtimes, get_profile, load_tflite
from edgezoo.zoo.data import load_natural_patches

OFFICIAL_BYTES = 98_496
OFFICIAL_ARENA = 55_984


@pytest.fixture(scope="module")
def patches():
    return load_natural_patches((32, 32, 3), per_image=256)


def test_patches_never_overlap_and_are_raw_pixels(patches):
    calib, held_out = patches.train.x, patches.test.x
    assert calib.shape == held_out.shape == (512, 32, 32, 3)
    assert 0 <= calib.min() and calib.max() <= 255 and calib.max() > 200
    flat_c = {p.tobytes() for p in calib.astype(np.uint8)}
    assert not flat_c & {p.tobytes() for p in held_out.astype(np.uint8)}


@pytest.mark.slow  # about 2 minutes on 2 cores
def test_plain_int8_matches_or_beats_the_official_file(mlperf_dir, patches):
    """Agreement on out-of-distribution patches is noisy: on 512 held-out patches ours is
    0.850 vs the official 0.844; on a 256-patch subset the order flipped (0.832 vs 0.859)."""
    model = load_keras_model(mlperf_dir / "pretrainedResnet.h5")
    assert model.count_params() == 78_666
    float_out = model.predict(patches.test.x, verbose=0)
    data, parsed, report = convert_model(model, "int8", get_profile("stm32l4r5"), patches.train.x)
    ours, _ = compare_runtimes(data, parsed, patches.test.x, float_outputs=float_out)
    official_bytes, official = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    theirs, _ = compare_runtimes(official_bytes, official, patches.test.x, float_outputs=float_out)

    assert len(official_bytes) == OFFICIAL_BYTES and theirs["arena_bytes"] == OFFICIAL_ARENA
    assert len(data) <= OFFICIAL_BYTES
    assert abs(report["arena_bytes"] - OFFICIAL_ARENA) <= 0.01 * OFFICIAL_ARENA
    assert ours["micro_vs_float_top1"] >= theirs["micro_vs_float_top1"]
    assert ours["micro_vs_reference_max_lsb"] <= 1
    assert report["fits"]
