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


# The best recipe: per-channel clustering distilled from the float model itself (the patches have
# no labels), int8, then TFLite Micro's LUT compression. The widest convolution (conv2d_7, 36,864
# of the 77,360 weights) takes 8 clusters (3-bit indices), the rest 16 (4-bit). Measured: 8
# clusters everywhere gives 50,672 B but agreement 0.78; 16 everywhere 0.80 at 62,224 B.
BEST_CLUSTERS = {None: 16, "conv2d_7": 8}


@pytest.mark.slow  # about 6 minutes on 2 cores (15 epochs of distillation)
def test_clustered_lut_model_is_smaller_and_agrees_as_well_as_the_official_file(mlperf_dir, patches):
    import tf_keras as keras

    from edgezoo.converters.clustering import cluster
    from edgezoo.converters.distill import SoftTargetLoss, teacher_logits
    from edgezoo.converters.finetune import FinetuneData
    from edgezoo.converters.micro_compression import compress_tflite
    from edgezoo.converters.quantize import convert
    from edgezoo.converters.rewrites import apply_micro_rewrites
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.converters.tflite_weights import max_unique_per_channel
    from edgezoo.edge.budget import check_budget
    from edgezoo.edge.compare import top1
    from edgezoo.edge.runners.micro import MicroRunner

    teacher = load_keras_model(mlperf_dir / "pretrainedResnet.h5")
    x = np.concatenate([patches.train.x, patches.train.x[:, :, ::-1]])  # + mirrored calibration patches
    epochs = 15
    schedule = keras.optimizers.schedules.CosineDecay(5e-4, decay_steps=epochs * len(x) // 32)
    student, info = cluster(teacher, FinetuneData(x, teacher_logits(teacher, x)), clusters=BEST_CLUSTERS,
                            epochs=epochs, learning_rate=schedule,
                            loss=SoftTargetLoss(4.0, student_probabilities=True))
    assert len(info["clustered_layers"]) == 9  # conv2d_5 (1x1, 16 weights per channel) stays
    assert list(info["unclustered_layers"]) == ["conv2d_5"]
    int8 = convert(apply_micro_rewrites(student)[0], "int8", patches.train.x, micro=True,
                   max_calibration=len(patches.train.x))
    unique = max_unique_per_channel(int8)
    # conv2d_7 + its batch norm convert to one CONV_2D named after the batch norm
    assert unique["batch_normalization_6"] <= 8 and max(unique.values()) <= 16, unique
    lut, lut_info = compress_tflite(int8)
    assert {t["bits"] for t in lut_info["tensors"]} == {3, 4}

    float_top1 = top1(teacher.predict(patches.test.x, verbose=0))
    plain = MicroRunner(int8, read_tflite(int8))
    ours = MicroRunner(lut, read_tflite(lut))
    ours_out = ours.run(patches.test.x)
    assert np.array_equal(ours_out, plain.run(patches.test.x))  # LUT compression is lossless
    official_bytes, official = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    theirs = MicroRunner(official_bytes, official)
    theirs_top1 = (top1(theirs.run(patches.test.x)) == float_top1).mean()
    ours_top1 = (top1(ours_out) == float_top1).mean()
    print(f"\nbest recipe: {len(lut)} B (official {len(official_bytes)} B), arena {ours.arena_bytes} B "
          f"(plain int8 {plain.arena_bytes} B, official {theirs.arena_bytes} B; decoded at once "
          f"{lut_info['decompression_bytes']} B), agreement {ours_top1:.3f} (official {theirs_top1:.3f})")

    assert len(lut) <= 0.6 * OFFICIAL_BYTES
    # DECODE outputs are planned in the arena, so its measured size is arena + decompression memory
    assert ours.arena_bytes <= plain.arena_bytes + lut_info["decompression_bytes"]
    assert theirs.arena_bytes == OFFICIAL_ARENA and ours.arena_bytes <= 1.15 * OFFICIAL_ARENA
    assert ours_top1 >= theirs_top1
    assert check_budget(get_profile("stm32l4r5"), len(lut), ours.arena_bytes)["fits"]
