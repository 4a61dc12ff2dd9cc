"""Natural-image patches cut from scikit-learn's two bundled sample photographs.

Used wherever a task's own images are not available offline (calibrating and
checking CIFAR-10-style models). The calibration patches come from the left
half of each photograph and the evaluation patches from the right half, so the
two sets never share a pixel.
"""
import numpy as np

from edgezoo.zoo.data.digits import Dataset, Split


def _patches(image, size, stride, rng, count):
    h, w = image.shape[:2]
    ys = np.arange(0, h - size + 1, stride)
    xs = np.arange(0, w - size + 1, stride)
    grid = np.array([(y, x) for y in ys for x in xs])
    pick = grid[rng.choice(len(grid), size=min(count, len(grid)), replace=False)]
    return np.stack([image[y : y + size, x : x + size] for y, x in pick])


def load_natural_patches(input_shape=(32, 32, 3), per_image=256, seed=0, scale=255.0):
    """Calibration (``train``) and held-out evaluation (``test``) patches, values in [0, ``scale``].

    Labels are -1: these images have none; use them for ranges and agreement.
    """
    from sklearn.datasets import load_sample_images

    size, channels = int(input_shape[0]), int(input_shape[2])
    if int(input_shape[1]) != size or channels != 3:
        raise ValueError(f"natural patches are square RGB, got input shape {tuple(input_shape)}")
    rng = np.random.default_rng(seed)
    calib, held_out = [], []
    for image in load_sample_images().images:
        half = image.shape[1] // 2
        calib.append(_patches(image[:, :half], size, size // 2, rng, per_image))
        held_out.append(_patches(image[:, half:], size, size // 2, rng, per_image))
    to_split = lambda parts: Split(  # noqa: E731
        (np.concatenate(parts).astype(np.float32) * (scale / 255.0)),
        np.full(sum(len(p) for p in parts), -1, np.int64))
    empty = Split(np.zeros((0, *input_shape), np.float32), np.zeros((0,), np.int64))
    return Dataset("natural_patches", to_split(calib), empty, to_split(held_out), num_classes=0)


def natural_patch_grid(size=32, stride=8, mirror=True, scale=255.0):
    """Every ``size``-pixel patch at ``stride`` from the calibration (left) half of each photograph,
    with its mirror image: many unlabelled inputs (e.g. for distillation) that never touch a pixel
    of the held-out patches."""
    from sklearn.datasets import load_sample_images

    patches = []
    for image in load_sample_images().images:
        left = image[:, : image.shape[1] // 2]
        patches += [left[y : y + size, x : x + size]
                    for y in range(0, left.shape[0] - size + 1, stride)
                    for x in range(0, left.shape[1] - size + 1, stride)]
    x = np.stack(patches).astype(np.float32) * (scale / 255.0)
    return np.concatenate([x, x[:, :, ::-1]]) if mirror else x


def load_natural_patch_grid(input_shape=(32, 32, 3), seed=0):
    """``natural_patch_grid`` as the training split (shuffled with ``seed``, so any prefix
    samples both photographs), with the held-out patches of ``load_natural_patches`` as test."""
    held_out = load_natural_patches(input_shape, seed=seed).test
    x = natural_patch_grid(size=int(input_shape[0]))
    x = x[np.random.default_rng(seed).permutation(len(x))]
    empty = Split(np.zeros((0, *input_shape), np.float32), np.zeros((0,), np.int64))
    return Dataset("natural_patch_grid", Split(x, np.full(len(x), -1, np.int64)), empty, held_out,
                   num_classes=0)
