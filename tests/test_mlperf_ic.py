"""Plain int8 of the real MLPerf Tiny IC model (ResNet-8) against its official int8 file."""
import pytest

from edgezoo.convert import convert_model, load_keras_model
from edgezoo.edge import get_profile, load_tflite, verify
from edgezoo.zoo.data import load_natural_patches

from conftest import ROOT

OFFICIAL_BYTES = 98_496
OFFICIAL_ARENA = 55_984


@pytest.fixture(scope="module")
def patches():
    return load_natural_patches((32, 32, 3))


def test_patches_never_overlap_and_are_raw_pixels(patches):
    """Calibration, validation and test come from disjoint bands of the photographs
    (tests/test_natural_patches.py checks the regions pixel by pixel)."""
    calib, val, held_out = patches.train.x, patches.val.x, patches.test.x
    assert calib.shape[1:] == val.shape[1:] == held_out.shape[1:] == (32, 32, 3)
    assert len(held_out) >= 2000 and len(calib) >= 500 and len(val) >= 300
    assert patches.value_range == (0.0, 255.0)
    assert 0 <= calib.min() and calib.max() <= 255 and calib.max() > 200
    flat = {name: {p.tobytes() for p in x} for name, x in
            (("calib", calib), ("val", val), ("test", held_out))}
    assert not flat["calib"] & flat["test"] and not flat["val"] & flat["test"]
    assert not flat["calib"] & flat["val"]


@pytest.mark.slow  # about 2 minutes on 2 cores
def test_plain_int8_matches_or_beats_the_official_file(mlperf_dir, patches):
    """Agreement on out-of-distribution patches is noisy: on the former 512 held-out patches
    (right halves, one scale) ours was 0.850 vs the official 0.844; on a 256-patch subset the
    order flipped (0.832 vs 0.859). The test split is now 2,400 patches at three scales."""
    model = load_keras_model(mlperf_dir / "pretrainedResnet.h5")
    assert model.count_params() == 78_666
    float_out = model.predict(patches.test.x, verbose=0)
    board = get_profile("stm32l4r5")
    compressed, parsed = convert_model(model, "int8", board, patches.train.x)
    data = compressed.tflite
    ours = verify(data, parsed, board, patches.test.x, float_outputs=float_out)
    official_bytes, official = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    theirs = verify(official_bytes, official, board, patches.test.x, float_outputs=float_out)

    assert len(official_bytes) == OFFICIAL_BYTES and theirs["arena"]["recorded_bytes"] == OFFICIAL_ARENA
    assert len(data) <= OFFICIAL_BYTES
    assert abs(ours["arena_bytes"] - OFFICIAL_ARENA) <= 0.01 * OFFICIAL_ARENA
    assert ours["agreement"]["value"] >= theirs["agreement"]["value"]
    assert ours["checks"]["micro_vs_reference_per_op"]["passed"] and ours["fits"]


# The best recipe (recipes/mlperf_ic_best.json): the widest convolution (conv2d_7, 36,864 of the
# 77,360 weights) takes 8 clusters (3-bit indices), the rest 16 (4-bit). Measured while choosing it:
# 8 clusters everywhere gives 50,672 B but agreement 0.78; 16 everywhere 0.80 at 62,224 B (both
# distilled on the 512 calibration patches and their mirror images; the denser grid does better).
# The margin over the official file is thin and moves with the seed (bench/converters_mlperf.py
# runs seeds 0, 1, 2; 2 and 8 distillation epochs were compared while choosing the recipe).
# Those numbers were measured on the former natural patches (left/right photograph halves, 512
# held-out patches at one scale); the recipe was not re-chosen on the current validation split.


@pytest.mark.slow  # about 3 minutes on 2 cores (8 epochs of distillation on 4,600 grid patches)
@pytest.mark.xfail(strict=True, reason="not met yet: on the 2,400 test patches the recipe agrees "
                   "0.780 (seed 0; 0.693 and 0.737 for seeds 1 and 2) against the official 0.810 "
                   "(BENCHMARKS.md); strict, so this fails once the target is reached")
def test_best_recipe_is_smaller_and_agrees_as_well_as_the_official_file(mlperf_dir, tmp_path):
    """recipes/mlperf_ic_best.json through the convert pipeline: per-channel clustering distilled
    from the float model (the patches have no labels), int8, TFLite Micro LUT compression."""
    from edgezoo.convert import convert_pipeline
    from edgezoo.converters.recipe import Recipe
    from edgezoo.edge.verification import top1
    from edgezoo.edge.runners.micro import MicroRunner

    recipe = Recipe.from_file(ROOT / "recipes" / "mlperf_ic_best.json")
    report = convert_pipeline(mlperf_dir / "pretrainedResnet.h5", tmp_path, recipe.quantize,
                              recipe.target, calib="natural_patch_grid", recipe=recipe,
                              input_range="0,255")
    lut = (tmp_path / "model.tflite").read_bytes()
    assert list(report["steps"]["cluster"]["unclustered_layers"]) == ["conv2d_5"]  # 1x1, 16 weights
    unique = report["weights"]["max_unique_per_channel"]
    # conv2d_7 + its batch norm convert to one CONV_2D named after the batch norm
    assert unique["batch_normalization_6"] <= 8 and max(unique.values()) <= 16, unique
    bits = {t["bits"] for t in report["steps"]["micro_compression"]["tensors"]}
    assert bits == {3, 4}
    held_out = load_natural_patches((32, 32, 3)).test.x
    assert report["agreement"]["runtime"] == "tflite-micro"
    assert report["agreement"]["samples"] == len(held_out)  # the whole natural-patch test split

    official_bytes, official = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    float_top1 = top1(load_keras_model(mlperf_dir / "pretrainedResnet.h5").predict(held_out, verbose=0))
    theirs = MicroRunner(official_bytes, official)
    theirs_top1 = float((top1(theirs.run(held_out)) == float_top1).mean())
    print(f"\nbest recipe: {len(lut)} B (official {len(official_bytes)} B), arena "
          f"{report['arena_bytes']} B (official {theirs.arena_bytes} B), agreement "
          f"{report['agreement']['value']:.3f} (official {theirs_top1:.3f})")

    assert len(lut) == report["tflite_bytes"] <= 0.6 * OFFICIAL_BYTES
    assert report["tflite_bytes"] < report["uncompressed_tflite_bytes"]
    # DECODE outputs live in the arena: the measured arena is RAM including decompression
    ram = report["budget"]["ram"]
    assert ram["decompression_in_arena_bytes"] > 0 and ram["decompression_bytes"] == 0
    assert theirs.arena_bytes == OFFICIAL_ARENA and report["arena_bytes"] <= 1.15 * OFFICIAL_ARENA
    assert report["agreement"]["value"] >= theirs_top1
    assert report["fits"] is True


@pytest.mark.slow  # about 1.5 minutes a seed on 2 cores; tests/test_ptq.py's unit tests cover the parts
@pytest.mark.parametrize("seed", [0, 1, pytest.param(2, marks=pytest.mark.xfail(
    strict=True, reason="not met on every seed: seed 2 agrees 0.751 against the official 0.810 "
    "(BENCHMARKS.md); strict, so this fails once it is"))])
def test_post_training_cluster_recipe_is_smaller_and_agrees_better_than_the_official_file(
        mlperf_dir, tmp_path, seed):
    """recipes/mlperf_ic_ptq.json (chosen on the validation split by
    bench/mlperf_ic_ptq_choice.py): K values per channel fitted on calibration patches with GPTQ's
    error compensation, no training; judged here on the test split. The seed only starts the
    k-means, and moves the agreement from 0.75 to 0.87."""
    from edgezoo.convert import convert_pipeline
    from edgezoo.converters.recipe import Recipe
    from edgezoo.edge.verification import top1
    from edgezoo.edge.runners.micro import MicroRunner

    recipe = Recipe.from_file(ROOT / "recipes" / "mlperf_ic_ptq.json").replace(seed=seed)
    assert not recipe.trains
    report = convert_pipeline(mlperf_dir / "pretrainedResnet.h5", tmp_path, recipe.quantize,
                              recipe.target, calib="natural_patches", recipe=recipe,
                              input_range="0,255")
    held_out = load_natural_patches((32, 32, 3)).test.x
    assert report["agreement"]["runtime"] == "tflite-micro"
    assert report["agreement"]["samples"] == len(held_out)
    clustered = {n for n, row in report["steps"]["ptq_weights"]["layers"].items() if "clusters" in row}
    assert clustered == {n for n, k in recipe.cluster_counts().items() if n}
    # LUT indices: 3 bits for conv2d_7 (8 values), 4 for the other large layers (16); the 1x1
    # convolutions' 16 and 32 weights a channel are left as they are when no smaller
    bits = [t["bits"] for t in report["steps"]["micro_compression"]["tensors"]]
    assert bits.count(3) == 1 and bits.count(4) >= 5 and set(bits) == {3, 4}, bits
    official_bytes, official = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    float_top1 = top1(load_keras_model(mlperf_dir / "pretrainedResnet.h5").predict(held_out, verbose=0))
    theirs = MicroRunner(official_bytes, official)
    theirs_top1 = float((top1(theirs.run(held_out)) == float_top1).mean())
    assert report["tflite_bytes"] <= 0.6 * OFFICIAL_BYTES < report["uncompressed_tflite_bytes"]
    assert report["budget"]["ram"]["decompression_in_arena_bytes"] > 0
    assert report["arena_bytes"] <= 1.15 * OFFICIAL_ARENA
    assert report["agreement"]["value"] >= theirs_top1
    assert report["fits"] is True
