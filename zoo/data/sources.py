"""Data for one model: a named data set or a user's file, brought into the model's input contract.

Named data sets are resized only by their own registered preprocessing (their
loader refuses shapes it cannot provide) and rescaled from the range their
values are stored in to the model's; a file is taken in the model's units and
checked against the contract. A single file is split into calibration,
validation and test parts, and the data set's ``source`` says how.
"""
import numpy as np

from edgezoo.base.errors import DataError
from edgezoo.zoo.data import DATASETS, Dataset, Split, load_dataset
from edgezoo.zoo.data.arrays import check_labels, check_samples, read_array_file
from edgezoo.zoo.data.contract import rescale
from edgezoo.zoo.data.detection import DETECTION_SETS, is_detection_source, load_detection_data

FILE_SPLIT = (0.6, 0.2, 0.2)  # calibration / validation / test of a single user file
FILE_SPLIT_SEED = 0


def _empty(shape):
    return Split(np.zeros((0, *shape), np.float32), np.zeros((0,), np.int64))


def split_file(name, x, y, seed=FILE_SPLIT_SEED):
    """A seeded 60/20/20 split of one file's samples (at least one test sample)."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(FILE_SPLIT[2] * len(x))))
    n_val = int(round(FILE_SPLIT[1] * len(x))) if len(x) - n_test > 1 else 0
    test, val, train = np.split(order, [n_test, n_test + n_val])
    parts = [Split(x[np.sort(i)], y[np.sort(i)]) for i in (train, val, test)]
    how = (f"{name}: {len(x)} samples split at random (seed {seed}) into {len(train)} calibration, "
           f"{len(val)} validation and {len(test)} test samples")
    return parts, how


def is_named(source):
    """A data set edgezoo knows by name (its test split is what ``edgezoo test`` measures)."""
    return source in DATASETS or source in DETECTION_SETS


def _detection_images(source, shape, contract):
    """A detection set's images as a conversion's data (train calibrates, val chooses, test
    measures agreement), unlabelled: boxes are scored by ``edgezoo eval`` (COCO mAP)."""
    if len(shape) != 3 or shape[-1] != 3:
        raise DataError(f"{source} holds RGB images (H, W, 3); the model takes inputs of shape "
                        f"{shape}")
    data = load_detection_data(source, shape[:2])
    splits = [Split(check_samples(rescale(s.x, data.value_range, contract),
                                  f"{data.name} {part} split"), np.full(len(s), -1, np.int64))
              for part, s in zip(("train", "val", "test"), (data.train, data.val, data.test))]
    how = data.source + "; images only (boxes: edgezoo eval)" + _rescaled(data.value_range,
                                                                          contract)
    return Dataset(data.name, *splits, num_classes=0, value_range=(contract.low, contract.high),
                   source=how)


def _rescaled(value_range, contract):
    """The report's words for bringing stored values into the model's range (or nothing)."""
    lo, hi = value_range
    if (lo, hi) == (contract.low, contract.high):
        return ""
    return (f"; values rescaled linearly from [{lo:g}, {hi:g}] to "
            f"[{contract.low:g}, {contract.high:g}] ({contract.origin})")


def load_for_model(source, input_shape, contract, *, split=True, num_classes=None):
    """``source`` (a data set name, detection data or a .npy/.npz path) for a model taking
    ``input_shape``.

    ``contract``: the model's InputContract, or None when nothing records it (then a
    named data set is refused: its values cannot be put in an unknown range).
    ``split=False`` keeps all of a file's samples as the test split (``edgezoo test``).
    """
    shape = tuple(int(s) for s in input_shape)
    detection = is_detection_source(source)
    if (source in DATASETS or detection) and contract is None:
        raise DataError(f"the model records no input range, so the {source} data set cannot be "
                        "brought into it: pass --input-range LOW,HIGH (the values the model was "
                        "trained on, e.g. 0,1 or 0,255)")
    if detection:
        return _detection_images(source, shape, contract)
    if source in DATASETS:
        data = load_dataset(source, shape)
        if num_classes is not None and data.num_classes > num_classes:
            raise DataError(f"the {source} data set has {data.num_classes} classes but the model "
                            f"outputs {num_classes}: its labels cannot train or score this model")
        splits = [Split(check_samples(rescale(s.x, data.value_range, contract),
                                      f"{source} {part} split"), s.y) if len(s) else s
                  for part, s in zip(("train", "val", "test"), (data.train, data.val, data.test))]
        how = data.source + _rescaled(data.value_range, contract)
        return Dataset(data.name, *splits, num_classes=data.num_classes,
                       value_range=(contract.low, contract.high), source=how)
    if str(source).endswith((".npy", ".npz")):
        x, y = read_array_file(source)
    else:
        raise DataError(f"data {source!r} is neither a data set ({', '.join(DATASETS)}) nor a "
                        ".npy/.npz file")
    name = str(source).rsplit("/", 1)[-1]
    x = check_samples(x, f"data file {name}", shape)
    y = np.full(len(x), -1, np.int64) if y is None else check_labels(y, len(x), f"labels in {name}",
                                                                       num_classes)
    if contract is not None and not contract.contains(x):
        raise DataError(f"data file {name} has values in [{x.min():.4g}, {x.max():.4g}] but the "
                        f"model takes [{contract.low:g}, {contract.high:g}] ({contract.origin}): "
                        "scale the data into that range, or pass the right --input-range")
    value_range = (contract.low, contract.high) if contract is not None else (float(x.min()),
                                                                              float(x.max()))
    labelled = y[y >= 0]
    classes = int(labelled.max()) + 1 if len(labelled) else 0
    if split:
        parts, how = split_file(name, x, y)
    else:
        parts, how = [_empty(shape), _empty(shape), Split(x, y)], f"{name}: all {len(x)} samples"
    if contract is None:
        how += "; taken as given (the model records no input range)"
    return Dataset(name.rsplit(".", 1)[0], *parts, num_classes=classes, value_range=value_range,
                   source=how)
