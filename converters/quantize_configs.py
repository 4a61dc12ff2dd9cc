"""TFMOT QuantizeConfigs for the zoo's layers; which layer gets which is in the support table.

Stock TFMOT quantization-aware training knows only built-in Keras layers (and
those by exact class), so it refuses ``LayerNormalization``, the zoo's attention
layers, ``PointwiseDense`` and a GELU activation. The configs here fake-quantize
what TFLite's int8 converter quantizes: weight kernels (per channel where the
kernel becomes a ``CONV_2D`` filter, per tensor where it becomes a
``FULLY_CONNECTED`` one, as the converter does) and layer outputs. Tensors
inside a layer that has no fake-quant of its own (LayerNorm's mean and rsqrt,
attention scores and softmax, the class-token concatenation) are left to the
converter, which calibrates them on representative samples.

Which layer gets which config, what it preserves and what TFMOT only folds
are rows of ``edgezoo.converters.layer_support.LAYER_SUPPORT``; the dicts at
the end of this module are views of that table for ``edgezoo.converters.qat``.
"""
import inspect

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

# TFMOT exports no public name for its collaborative weight quantizers.
from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (  # noqa: E501
    cluster_preserve_quantize_registry as _cluster_preserve,
)
from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (  # noqa: E501
    prune_preserve_quantize_registry as _prune_preserve,
)

from edgezoo.converters.gelu import micro_gelu
from edgezoo.converters.layer_support import LAYER_SUPPORT, TFMOT
from edgezoo.zoo.layers import PointwiseDense

quantizers = tfmot.quantization.keras.quantizers

PRESERVE = (None, "sparsity", "cluster")


def activation_quantizer():
    """Asymmetric per-tensor 8-bit range, learned as a moving average (TFLite int8 activations)."""
    return quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                             narrow_range=False)


def kernel_quantizer(per_axis, preserve=None):
    """Symmetric narrow-range 8-bit weights, as TFLite int8 stores them.

    ``per_axis`` quantizes each output channel (the last kernel axis) on its
    own scale. ``preserve`` swaps in TFMOT's collaborative quantizers, which
    keep a pruned kernel's zeros or a clustered kernel's centroids.
    """
    args = dict(num_bits=8, per_axis=per_axis, symmetric=True, narrow_range=True)
    if preserve == "sparsity":
        return _prune_preserve.PrunePreserveDefaultWeightsQuantizer(**args)
    if preserve == "cluster":
        return _cluster_preserve.ClusterPreserveDefaultWeightsQuantizer(
            **args, preserve_sparsity=True)
    return quantizers.LastValueQuantizer(**args)


class KernelView(quantizers.Quantizer):
    """Wraps a weight quantizer: names its range variables, and can quantize a conv-filter view.

    ``as_filter``: a (in, out) kernel is fake-quantized as the (1, 1, in, out)
    filter a 1x1 CONV_2D uses. A per-channel fake-quant on the 2-D kernel,
    followed by the reshape in ``PointwiseDense.call``, leaves the converter a
    per-axis quantized reshape it cannot transpose into TFLite's filter layout
    ("mismatched quantized axes"); on the 4-D filter the axis is a Conv2D's.
    ``name``: the prefix of the range variables, unique per kernel when one
    wrapper holds several (TFMOT names them after the weight, ``kernel``,
    and an .h5 file cannot hold two of the same name).
    """

    def __init__(self, inner, name=None, as_filter=False):
        self.inner, self.name, self.as_filter = inner, name, bool(as_filter)

    def build(self, tensor_shape, name, layer):
        return self.inner.build(tensor_shape, self.name or name, layer)

    def __call__(self, inputs, training, weights, **kwargs):
        if not self.as_filter:
            return self.inner(inputs, training, weights, **kwargs)
        shape = inputs.shape
        filt = tf.reshape(inputs, [1] * (4 - len(shape)) + list(shape))
        return tf.reshape(self.inner(filt, training, weights, **kwargs), shape)

    def get_config(self):
        return {"inner": keras.utils.serialize_keras_object(self.inner), "name": self.name,
                "as_filter": self.as_filter}


class _Base(tfmot.quantization.keras.QuantizeConfig):
    """No activations to wrap; optional output quantization."""

    def __init__(self, quantize_output=True):
        self.quantize_output = bool(quantize_output)

    def get_weights_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [activation_quantizer()] if self.quantize_output else []

    def get_config(self):
        return {"quantize_output": self.quantize_output}


@keras.saving.register_keras_serializable(package="edgezoo")
class OutputQuantizeConfig(_Base):
    """Only the layer's output gets a fake-quant (its weights are not matmul kernels)."""


@keras.saving.register_keras_serializable(package="edgezoo")
class PassThroughQuantizeConfig(_Base):
    """Nothing is fake-quantized: the layer moves or selects values and keeps their scale."""

    def __init__(self):
        super().__init__(quantize_output=False)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="edgezoo")
class KernelQuantizeConfig(_Base):
    """A layer's own ``kernel`` (per channel or per tensor) and its output."""

    def __init__(self, per_axis=True, quantize_output=True, preserve=None):
        super().__init__(quantize_output)
        self.per_axis = bool(per_axis)
        self.preserve = preserve

    def get_weights_and_quantizers(self, layer):
        if self.preserve == "cluster":
            # TFMOT's cluster-preserving quantizer assigns to the kernel variable itself, so it
            # cannot see the 4-D filter view; per tensor, the fake-quant passes the reshape.
            return [(layer.kernel, kernel_quantizer(False, self.preserve))]
        quantizer = kernel_quantizer(self.per_axis, self.preserve)
        if isinstance(layer, PointwiseDense) and self.per_axis:
            quantizer = KernelView(quantizer, as_filter=True)
        return [(layer.kernel, quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        (layer.kernel,) = quantize_weights

    def get_config(self):
        return {**super().get_config(), "per_axis": self.per_axis, "preserve": self.preserve}


def projection_kernels(layer):
    """(sub-layer, per_axis) for each Dense / PointwiseDense projection a composite layer owns.

    ``PointwiseDense`` becomes CONV_2D (per-channel weights); ``Dense`` becomes
    FULLY_CONNECTED, whose weights the converter quantizes per tensor.
    """
    found = []
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        if isinstance(sub, PointwiseDense):
            found.append((sub, True))
        elif type(sub) is keras.layers.Dense:
            found.append((sub, False))
    return sorted(found, key=lambda item: item[0].name)


@keras.saving.register_keras_serializable(package="edgezoo")
class ProjectionsQuantizeConfig(_Base):
    """Every projection kernel inside a composite layer (attention) and the layer's output.

    The tensors between the projections (per-head q, k, v, scores, softmax,
    context) are left to the converter's calibration.
    """

    def get_weights_and_quantizers(self, layer):
        return [(sub.kernel, KernelView(kernel_quantizer(per_axis), f"{sub.name}_kernel", per_axis))
                for sub, per_axis in projection_kernels(layer)]

    def set_quantize_weights(self, layer, quantize_weights):
        subs = projection_kernels(layer)
        if len(subs) != len(quantize_weights):
            raise ValueError(f"{layer.name}: {len(quantize_weights)} quantized kernels for "
                             f"{len(subs)} projections")
        for (sub, _), weight in zip(subs, quantize_weights):
            sub.kernel = weight


def _factory(row):
    """``preserve -> QuantizeConfig`` for a support-table row (``preserve`` reaches the configs
    that take it)."""
    cls = CUSTOM_OBJECTS[row.quantize]
    args = dict(row.quantize_args)
    takes_preserve = "preserve" in inspect.signature(cls).parameters
    return lambda preserve: cls(**args, **({"preserve": preserve} if takes_preserve else {}))


def _tables():
    """The QAT facts of the support table, as the dicts ``edgezoo.converters.qat`` looks up."""
    ours = [row for row in LAYER_SUPPORT if row.quantize not in (None, TFMOT)]
    return (
        # layer class -> (QuantizeConfig factory taking ``preserve``, what is quantized and why).
        {row.layer: (_factory(row), row.quantize_why) for row in ours if row.activation is None},
        # Activation functions TFMOT's Activation config refuses -> (factory, why).
        {row.activation: (_factory(row), row.quantize_why) for row in ours if row.activation},
        # Layers TFMOT accepts only folded into the layer before them: class -> preceding classes.
        {row.layer: row.folded_into for row in LAYER_SUPPORT if row.folded_into},
        # Layers whose kernels the collaborative (preserve=...) quantizers cannot wrap.
        {row.layer: row.preserve_why for row in LAYER_SUPPORT if not row.preserve},
    )


CUSTOM_OBJECTS = {
    "OutputQuantizeConfig": OutputQuantizeConfig,
    "PassThroughQuantizeConfig": PassThroughQuantizeConfig,
    "KernelQuantizeConfig": KernelQuantizeConfig,
    "ProjectionsQuantizeConfig": ProjectionsQuantizeConfig,
    "micro_gelu": micro_gelu,
}

LAYER_CONFIGS, ACTIVATION_CONFIGS, FOLDED_INTO, PRESERVE_UNSUPPORTED = _tables()
