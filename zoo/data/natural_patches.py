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
