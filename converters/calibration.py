"""Checks on representative (calibration) data before post-training quantization.

Quantization ranges come from these samples alone: a wrong shape is an error;
samples that are constant, too few, duplicated, or far narrower than the data
the model meets make ranges that clip or waste int8 steps, so they warn.
"""
import warnings

import numpy as np

MIN_SAMPLES = 32


class CalibrationWarning(UserWarning):
    """Representative data that will likely give poor quantization ranges."""


def check_calibration(samples, input_shape, reference=None):
    """Raise on unusable samples; return (and ``warnings.warn``) what looks degenerate.

    ``reference``: data the model will meet (held-out or training inputs), to
    compare value ranges against.
    """
    from edgezoo.zoo.data.arrays import check_samples

    # shape, emptiness, dtype, NaN/inf and magnitudes that overflow quantization scales
    samples = check_samples(samples, "calibration data", input_shape)
    found = []
    flat = samples.reshape(len(samples), -1).astype(np.float64)
    if len(samples) < MIN_SAMPLES:
        found.append(f"only {len(samples)} calibration samples (fewer than {MIN_SAMPLES}): "
                     "activation ranges may miss values the model meets")
    if float(flat.std()) == 0.0:
        found.append("every calibration value is the same: quantization ranges will be degenerate")
    else:
        distinct = len(np.unique(flat, axis=0))
        if distinct < len(samples) / 2:
            found.append(f"only {distinct} distinct calibration samples out of {len(samples)}")
    if reference is not None:
        ref = np.asarray(reference, np.float64)
        lo, hi = float(ref.min()), float(ref.max())
        span = hi - lo
        covered = (float(flat.max()) - float(flat.min())) / span if span > 0 else 1.0
        if covered < 0.5:
            found.append(f"calibration values span {covered:.0%} of the input range the model "
                         f"meets ([{lo:.3g}, {hi:.3g}]): inputs outside it will clip")
    for message in found:
        warnings.warn(message, CalibrationWarning, stacklevel=2)
    return found


def check_model_calibration(model, samples, reference=None):
    """``check_calibration`` for every input of ``model``: float inputs get the range checks;
    integer inputs (token ids, masks: never quantized) only the shape, emptiness and
    whole-number checks. Returns every warning, prefixed with the input's name when the
    model has several."""
    from edgezoo.base.errors import DataError
    from edgezoo.zoo.data.arrays import input_list

    xs = input_list(samples, model.input_names)
    refs = None if reference is None else input_list(reference, model.input_names)
    if len(xs) != len(model.inputs):
        raise DataError(f"calibration data holds {len(xs)} input array(s); the model takes "
                        f"{len(model.inputs)} ({', '.join(model.input_names)})")
    found = []
    for k, (tensor, name, x) in enumerate(zip(model.inputs, model.input_names, xs)):
        shape = tuple(tensor.shape[1:])
        if tensor.dtype.is_integer:
            x = np.asarray(x)
            if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or not len(x):
                raise DataError(f"calibration input {name!r} has shape {x.shape}; the model takes "
                                f"(N, {', '.join(map(str, shape))})")
            if x.dtype.kind == "f" and not np.all(np.mod(x, 1) == 0):
                raise DataError(f"calibration input {name!r} takes integers (token ids); the "
                                "data holds fractions")
            continue
        prefix = f"input {name!r}: " if len(xs) > 1 else ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            messages = check_calibration(x, shape, None if refs is None else refs[k])
        for message in messages:
            warnings.warn(prefix + message, CalibrationWarning, stacklevel=2)
            found.append(prefix + message)
    return found
