"""Named tensors: what a task's inputs and outputs are (name, dtype, shape, role, quantized)."""
import dataclasses

import numpy as np

from edgezoo.base.errors import DataError


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One named input or output of a model.

    ``shape`` excludes the batch; ``None`` marks a size the task leaves to the model.
    ``quantized``: whether int8 conversion quantizes it (token ids and masks stay int32).
    ``role``: what the tensor holds (``image``, ``token_ids``, ``attention_mask``,
    ``logits``, ``boxes``, ``hidden_states``, ...): the agreement measures read it.
    """

    name: str
    dtype: str
    shape: tuple
    role: str
    quantized: bool = True

    def as_dict(self):
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "role": self.role, "quantized": self.quantized}

    def matches(self, shape, dtype):
        """Whether a (batch-free) shape and dtype fit this spec."""
        if np.dtype(dtype) != np.dtype(self.dtype):
            return False
        shape = tuple(shape)
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape))


def keras_specs(model, roles, what):
    """The TensorSpecs of a Keras model's inputs or outputs (``what``), one role each, in order."""
    tensors = model.inputs if what == "inputs" else model.outputs
    names = model.input_names if what == "inputs" else model.output_names
    if len(roles) != len(tensors):
        raise DataError(f"model {model.name!r} has {len(tensors)} {what}; the task expects "
                        f"{len(roles)} ({', '.join(roles)})")
    specs = []
    for tensor, name, role in zip(tensors, names, roles):
        dtype = tensor.dtype.name if hasattr(tensor.dtype, "name") else str(tensor.dtype)
        integer = np.dtype(dtype).kind in "iub"
        specs.append(TensorSpec(name, dtype, tuple(tensor.shape[1:]), role, quantized=not integer))
    return specs
