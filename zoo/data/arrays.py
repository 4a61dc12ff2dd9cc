"""Reading and checking arrays of samples: one place for .npy / .npz files and value checks.

Every array that calibrates, fine-tunes or evaluates passes ``check_samples``
first, so a report is never built on empty, non-numeric, NaN, infinite or
absurdly large data (values near 1e20 overflow the converter's scales and
crash it).
"""
from pathlib import Path

import numpy as np

from edgezoo.base.errors import DataError

MAX_ABS_VALUE = 1e6  # beyond it float32 activation ranges (and int8 scales) can overflow


def check_samples(x, what="data", input_shape=None):
    """``x`` as float32 after refusing what no report can be built on."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{what} has dtype {x.dtype}; samples must be numbers (float or int)")
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{what} is empty: it needs at least one sample")
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise DataError(f"{what} has shape {x.shape}; the model takes "
                            f"(N, {', '.join(map(str, shape))})")
    x = x.astype(np.float32) if x.dtype != np.float32 else x
    bad = ~np.isfinite(x)
    if bad.any():
        raise DataError(f"{what} holds {int(bad.sum())} NaN or infinite value(s) "
                        f"(first in sample {int(np.argwhere(bad)[0][0])}); remove or replace them")
    peak = float(np.abs(x).max())
    if peak > MAX_ABS_VALUE:
        raise DataError(f"{what} holds values up to {peak:.3g}; beyond {MAX_ABS_VALUE:.0e} "
                        "quantization scales overflow. Scale the data into the model's input range")
    return x


def check_labels(y, n, what="labels", num_classes=None):
    """Integer class labels, one per sample (-1 marks an unlabelled sample)."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise DataError(f"{what} have dtype {y.dtype}; class labels must be integers")
    if y.shape != (n,):
        raise DataError(f"{what} have shape {y.shape}; expected one label per sample ({n},)")
    y = y.astype(np.int64)
    if len(y) and (y.min() < -1 or (num_classes is not None and y.max() >= num_classes)):
        raise DataError(f"{what} range over [{y.min()}, {y.max()}]; the model has "
                        f"{num_classes} classes (0..{(num_classes or 1) - 1}, -1 for none)")
    return y


def read_array_file(path):
    """(x, y or None) from a .npy (samples) or .npz (``x`` and optional ``y``); never unpickles."""
    path = Path(str(path))
    if path.suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: data files are .npy (samples) or .npz (arrays x and optional y)")
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if path.suffix == ".npz":
            if "x" not in loaded.files:
                raise DataError(f"{path} holds {loaded.files}; a .npz needs an array named x "
                                "(samples) and optionally y (labels)")
            return loaded["x"], loaded["y"] if "y" in loaded.files else None
        return loaded, None
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001  (pickled objects, truncation, not numpy at all)
        raise DataError(f"cannot read data file {path}: {str(exc).splitlines()[0]}") from None


# ------------------------------------------------------------------ samples of N named inputs
# A model with one input takes an array; a model with several takes a list (its input order)
# or a dict by input name. These three keep every layer from assuming "input 0".

def input_list(x, names=None):
    """``x`` as a list of arrays, one per input: an array (one input), a list/tuple, or a dict
    keyed by the input ``names`` (all of them, no others)."""
    if isinstance(x, dict):
        if names is None or set(x) != set(names):
            raise DataError(f"inputs given by name {sorted(x)}; the model's inputs are "
                            f"{list(names or [])}")
        return [np.asarray(x[n]) for n in names]
    if isinstance(x, (list, tuple)):
        return [np.asarray(a) for a in x]
    return [np.asarray(x)]


def num_samples(x):
    """How many samples ``x`` (an array or a list of per-input arrays) holds, checking that
    every input holds as many."""
    arrays = input_list(x) if not isinstance(x, dict) else list(x.values())
    counts = {len(a) for a in arrays}
    if len(counts) != 1:
        raise DataError(f"the inputs hold different numbers of samples: {sorted(counts)}")
    return counts.pop()


def take(x, index):
    """Samples ``index`` (a slice or index array) of every input; an array stays an array."""
    if isinstance(x, (list, tuple)):
        return [np.asarray(a)[index] for a in x]
    return np.asarray(x)[index]


def single(x):
    """The array of a one-input sample set (unwraps a one-element list)."""
    return x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x
