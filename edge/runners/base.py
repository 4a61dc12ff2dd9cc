"""One interface over the runtimes: run a batch of samples, one invoke per sample, raw outputs."""
import abc

import numpy as np

from edgezoo.converters.tflite_model import dequantize_output, quantize_input
from edgezoo.base.errors import EdgezooError


class InputError(EdgezooError, ValueError):
    """Inputs of the wrong shape or dtype for a model."""


class Runner(abc.ABC):
    """A TFLite runtime. ``run`` returns the raw (still quantized) readout for each sample.

    The readout is the model's output, or the input of a final SOFTMAX when the
    model ends in one, so runtimes are compared before the softmax squashes them.
    """

    name = "runner"

    def __init__(self, model_bytes, model):
        self.model_bytes = bytes(model_bytes)
        self.model = model
        self.readout = model.readout_tensor()
        self.readout_details = model.tensors[self.readout] if self.readout is not None else model.outputs[0]

    def prepare_inputs(self, x):
        """Float samples (N, ...) -> the model's input dtype, quantized; checks the shape."""
        details = self.model.inputs[0]
        x = np.asarray(x)
        expected = tuple(details.shape[1:])
        if x.ndim != len(details.shape) or tuple(x.shape[1:]) != expected:
            raise InputError(
                f"{self.name}: inputs of shape {x.shape} do not match the model input "
                f"(N, {', '.join(map(str, expected))})"
            )
        if x.dtype.kind == "f":
            return quantize_input(x, details)
        if x.dtype != np.dtype(details.dtype.lower()):
            raise InputError(f"{self.name}: inputs of dtype {x.dtype} but the model takes {details.dtype.lower()}")
        return x

    @abc.abstractmethod
    def run_raw(self, x):
        """Raw readout for already-quantized inputs (N, ...)."""

    def run(self, x):
        return self.run_raw(self.prepare_inputs(x))

    def run_float(self, x):
        """Readout dequantized to float."""
        return dequantize_output(self.run(x), self.readout_details)
