"""Plain int8 of the real MLPerf Tiny IC model (ResNet-8) against its official int8 file."""
import numpy as np
import pytest

from edgezoo.convert import convert_model, load_keras_model
from edgezoo.edge import compare_runtimes, get_profile, load_tflite
from edgezoo.zoo.data import load_natural_patches

from conftest import ROOT

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


# The best recipe (recipes/mlperf_ic_best.json): the widest convolution (conv2d_7, 36,864 of the
# 77,360 weights) takes 8 clusters (3-bit indices), the rest 16 (4-bit). Measured while choosing it:
# 8 clusters everywhere gives 50,672 B but agreement 0.78; 16 everywhere 0.80 at 62,224 B (both
# distilled on the 512 calibration patches and their mirror images; the denser grid does better).
# The margin over the official file is thin and moves with the seed (bench/converters_mlperf.py
# runs seeds 0, 1, 2; 2 and 8 distillation epochs were compared while choosing the recipe).


@pytest.mark.slow  # about 3 minutes on 2 cores (8 epochs of distillation on 7,400 patches)
def test_best_recipe_is_smaller_and_agrees_as_well_as_the_official_file(mlperf_dir, tmp_path):
    """recipes/mlperf_ic_best.json through the convert pipeline: per-channel clustering distilled
    from the float model (the patches have no labels), int8, TFLite Micro LUT compression."""
    from edgezoo.convert import convert_pipeline
    from edgezoo.converters.recipe import Recipe
    from edgezoo.edge.compare import top1
    from edgezoo.edge.runners.micro import MicroRunner

    recipe = Recipe.from_file(ROOT / "recipes" / "mlperf_ic_best.json")
    report = convert_pipeline(mlperf_dir / "pretrainedResnet.h5", tmp_path, recipe.quantize,
                              recipe.target, calib="natural_patch_grid", recipe=recipe)
    lut = (tmp_path / "model.tflite").read_bytes()
    assert list(report["steps"]["cluster"]["unclustered_layers"]) == ["conv2d_5"]  # 1x1, 16 weights
    unique = report["weights"]["max_unique_per_channel"]
    # conv2d_7 + its batch norm convert to one CONV_2D named after the batch norm
    assert unique["batch_normalization_6"] <= 8 and max(unique.values()) <= 16, unique
    bits = {t["bits"] for t in report["steps"]["micro_compression"]["tensors"]}
    assert bits == {3, 4}
    assert report["agreement_runtime"] == "tflite-micro" and report["agreement_samples"] == 512

    official_bytes, official = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    held_out = load_natural_patches((32, 32, 3)).test.x
    float_top1 = top1(load_keras_model(mlperf_dir / "pretrainedResnet.h5").predict(held_out, verbose=0))
    theirs = MicroRunner(official_bytes, official)
    theirs_top1 = float((top1(theirs.run(held_out)) == float_top1).mean())
    print(f"\nbest recipe: {len(lut)} B (official {len(official_bytes)} B), arena "
          f"{report['arena_bytes']} B (official {theirs.arena_bytes} B), agreement "
          f"{report['agreement']:.3f} (official {theirs_top1:.3f})")

    assert len(lut) == report["tflite_bytes"] <= 0.6 * OFFICIAL_BYTES
    assert report["tflite_bytes"] < report["uncompressed_tflite_bytes"]
    # DECODE outputs live in the arena: the measured arena is RAM including decompression
    ram = report["budget"]["ram"]
    assert ram["decompression_in_arena_bytes"] > 0 and ram["decompression_bytes"] == 0
    assert theirs.arena_bytes == OFFICIAL_ARENA and report["arena_bytes"] <= 1.15 * OFFICIAL_ARENA
    assert report["agreement"] >= theirs_top1
    assert report["fits"] is True
