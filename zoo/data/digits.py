"""scikit-learn's bundled handwritten digits (8x8, 1,797 images), split once with a fixed seed."""
import dataclasses

import numpy as np

SPLIT_SEED = 20240601  # fixed: the split never changes between runs or machines
FRACTIONS = (0.6, 0.2, 0.2)  # train / val / test


@dataclasses.dataclass(frozen=True)
class Split:
    x: np.ndarray
    y: np.ndarray

    def __len__(self):
        return len(self.y)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """``train`` calibrates and fine-tunes, ``val`` chooses (recipes, epochs), ``test`` only
    measures. ``value_range``: the range the values are stored in (before any model's input
    contract rescales them); ``source``: how the splits were made, for reports."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    value_range: tuple = (0.0, 1.0)
    source: str = ""


def _split_indices(labels):
    """Stratified 60/20/20 indices; the test split is never used to choose anything."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=FRACTIONS[2], stratify=labels,
                                  random_state=SPLIT_SEED)
    val_share = FRACTIONS[1] / (FRACTIONS[0] + FRACTIONS[1])
    train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest],
                                  random_state=SPLIT_SEED)
    return np.sort(train), np.sort(val), np.sort(test)


def resize_images(images, input_shape):
    """Resize (N, h, w, c) floats in [0, 1] to ``input_shape`` (bilinear) and match channels."""
    import tensorflow as tf

    h, w, c = (int(s) for s in input_shape)
    if images.shape[1:3] != (h, w):
        images = tf.image.resize(images, (h, w), method="bilinear", antialias=True).numpy()
    if images.shape[-1] != c:
        if images.shape[-1] != 1:
            raise ValueError(f"cannot map {images.shape[-1]} channels to {c}")
        images = np.repeat(images, c, axis=-1)
    return np.clip(images, 0.0, 1.0).astype(np.float32)


def load_digits(input_shape=(8, 8, 1)):
    """Digits scaled to [0, 1], resized to ``input_shape``, split 60/20/20 (stratified, seeded).

    The registered preprocessing resizes the 8x8 grey images to square image inputs
    (H = W) and repeats the grey channel for RGB; any other shape (a 49x10 spectrogram,
    say) is refused, never stretched.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    from edgezoo.base.errors import DataError

    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] not in (1, 3):
        raise DataError(f"digits are 8x8 grey images and are resized only to square image inputs "
                        f"(H = W, 1 or 3 channels); the model takes {'x'.join(map(str, shape))}. "
                        "Pass the model's own data as a .npy/.npz file")
    bunch = sk_load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[..., None]
    labels = bunch.target.astype(np.int64)
    images = resize_images(images, shape)
    parts = [Split(images[i], labels[i]) for i in _split_indices(labels)]
    how = (f"scikit-learn digits 8x8 grey, resized to {shape[0]}x{shape[1]} (bilinear, antialiased)"
           f"{', grey repeated to 3 channels' if shape[2] == 3 else ''}; stratified 60/20/20 split "
           f"(seed {SPLIT_SEED}): train calibrates and fine-tunes, val chooses, test measures")
    return Dataset("digits", *parts, num_classes=10, value_range=(0.0, 1.0), source=how)
