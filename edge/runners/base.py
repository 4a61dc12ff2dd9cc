"""One interface over the runtimes: run a batch of samples, one invoke per sample, raw outputs.

A model has N named inputs and outputs of any dtype. ``prepare_inputs`` turns what a user
passes (an array for a one-input model, a list in input order, or a dict by input name) into
a ``Batch``: one array per input in the model's own dtype (float inputs quantized with their
scale, int32 token ids as they are). ``run_outputs`` gives one raw array per output;
``run_raw`` / ``run`` / ``run_float`` are the first output's (the whole model's, for a
one-output model).
"""
import abc
import io

import numpy as np

from edgezoo.base.errors import EdgezooError
from edgezoo.converters.tflite_model import dequantize_output, quantize_input


class InputError(EdgezooError, ValueError):
    """Inputs of the wrong shape or dtype for a model."""


class Batch:
    """Samples for every input of a model (one array each, in the model's input order, in
    its input dtypes). ``len`` is the number of samples; ``batch[a:b]`` takes samples of
    every input; ``sample(k)`` the k-th sample of each, batch 1."""

    def __init__(self, arrays):
        self.arrays = [np.asarray(a) for a in arrays]
        counts = {len(a) for a in self.arrays}
        if len(counts) != 1:
            raise InputError(f"every input needs the same number of samples; got {sorted(counts)}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("index a Batch with a slice (samples a..b of every input)")
        return Batch([a[index] for a in self.arrays])

    def sample(self, k):
        return [a[k : k + 1] for a in self.arrays]

    def to_bytes(self):
        """The arrays as an .npz (input j as "j"): how samples reach child processes."""
        buf = io.BytesIO()
        np.savez(buf, **{str(j): np.ascontiguousarray(a) for j, a in enumerate(self.arrays)})
        return buf.getvalue()

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    @classmethod
    def wrap(cls, x):
        """A Batch as it is; an array as the one input's samples; a list as one per input."""
        if isinstance(x, Batch):
            return x
        return cls(x if isinstance(x, (list, tuple)) else [x])


def read_npz_list(data):
    """Arrays "0", "1", ... of an .npz (bytes or path), in order; never unpickles."""
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    with np.load(source, allow_pickle=False) as z:
        return [z[str(j)] for j in range(len(z.files))]


class Runner(abc.ABC):
    """A TFLite runtime. ``run_outputs`` returns the raw (still quantized) readout of every
    output for each sample.

    The readout of a one-output model is its output, or the input of a final SOFTMAX when
    the model ends in one, so runtimes are compared before the softmax squashes them; with
    several outputs, each output as the model gives it.
    """

    name = "runner"

    def __init__(self, model_bytes, model):
        self.model_bytes = bytes(model_bytes)
        self.model = model
        self.readout = model.readout_tensor()
        self.readouts = model.readout_tensors() or (None,)
        self.readout_details = model.tensors[self.readout] if self.readout is not None else model.outputs[0]
        self.outputs_details = [model.tensors[j] for j in model.readout_tensors()] or [self.readout_details]

    @property
    def preserve(self):
        """Whether a readout is an inner tensor (the interpreter must keep every tensor)."""
        return self.readout is not None

    def prepare_inputs(self, x, names=None):
        """What a user passes -> the model's input dtypes (float samples quantized with each
        input's scale; integer inputs checked, never rescaled); checks shapes. An array for a
        one-input model, a ``Batch`` for several (``prepare_batch``: always a Batch).
        ``names``: the input names a dict is keyed by (the Keras model's input names)."""
        batch = self.prepare_batch(x, names)
        return batch.arrays[0] if len(batch.arrays) == 1 else batch

    def prepare_batch(self, x, names=None):
        """``prepare_inputs`` as a ``Batch`` whatever the number of inputs."""
        from edgezoo.zoo.data.arrays import input_list

        if isinstance(x, Batch):
            return x
        xs = input_list(x, names)
        inputs = self.model.inputs
        if len(xs) != len(inputs):
            raise InputError(f"{self.name}: the model has {len(inputs)} input(s); got "
                             f"{len(xs)} array(s)")
        out = []
        for k, (a, details) in enumerate(zip(xs, inputs)):
            what = "inputs" if len(inputs) == 1 else f"input {k} ({details.name})"
            expected = tuple(details.shape[1:])
            if a.ndim != len(details.shape) or tuple(a.shape[1:]) != expected:
                raise InputError(f"{self.name}: {what} of shape {a.shape} do not match the model "
                                 f"input (N, {', '.join(map(str, expected))})")
            want = np.dtype(details.dtype.lower())
            if a.dtype.kind == "f" and want.kind == "f":
                a = a.astype(want)
            elif a.dtype.kind == "f" and details.scale:
                a = quantize_input(a, details)
            elif a.dtype.kind == "f" and want.kind in "iu":  # token ids given as floats
                if not np.all(np.mod(a, 1) == 0):
                    raise InputError(f"{self.name}: {what} takes {want} (token ids); got fractions")
                a = a.astype(want)
            elif a.dtype != want:
                if a.dtype.kind in "iu" and want.kind in "iu" and not details.scale:
                    info = np.iinfo(want)
                    if a.size and (a.min() < info.min or a.max() > info.max):
                        raise InputError(f"{self.name}: {what} hold values outside {want}")
                    a = a.astype(want)
                else:
                    raise InputError(f"{self.name}: {what} of dtype {a.dtype} but the model takes "
                                     f"{details.dtype.lower()}")
            out.append(a)
        return Batch(out)

    @abc.abstractmethod
    def run_outputs(self, x):
        """Raw readout of every output for already-prepared inputs (a Batch, or an array for a
        one-input model): a list of arrays, samples first."""

    def run_raw(self, x):
        """The first output's raw readout (the whole model's, for a one-output model)."""
        return self.run_outputs(x)[0]

    def run(self, x):
        return self.run_raw(self.prepare_inputs(x))

    def run_float(self, x):
        """Readout dequantized to float."""
        return dequantize_output(self.run(x), self.readout_details)

    def run_all_float(self, x, names=None):
        """Every output's readout, dequantized to float."""
        outs = self.run_outputs(self.prepare_batch(x, names))
        return [dequantize_output(o, d) for o, d in zip(outs, self.outputs_details)]
