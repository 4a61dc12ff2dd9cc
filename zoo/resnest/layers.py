"""The two parameter-free pieces of ResNeSt's split attention (arXiv 2004.08955, Sec. 3).

A split-attention convolution yields ``radix * C`` channels laid out radix-major:
channel ``r * C + k * (C / K) + c`` belongs to radix split ``r`` and cardinal
group ``k`` (the order a convolution with ``K * R`` groups produces). The
attention logits from the grouped ``fc2`` come cardinal-major instead:
``k * (R * C / K) + r * (C / K) + c``. ``RadixSoftmax`` turns the second layout
into the first while taking the softmax over ``r``; ``RadixSum`` adds the splits.

Both are written with ops TFLite Micro has: SPLIT and ADD, and RESHAPE /
TRANSPOSE of at most 4-D around a SOFTMAX on the last axis (LOGISTIC for radix 1).
"""
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="edgezoo")
class RadixSum(keras.layers.Layer):
    """Sum of the ``radix`` equal channel splits: (..., R * C) -> (..., C)."""

    def __init__(self, radix, **kwargs):
        super().__init__(**kwargs)
        self.radix = int(radix)
        if self.radix < 1:
            raise ValueError(f"radix must be at least 1, got {radix}")

    def build(self, input_shape):
        if int(input_shape[-1]) % self.radix:
            raise ValueError(f"{input_shape[-1]} channels cannot be split into radix {self.radix}")
        super().build(input_shape)

    def call(self, x):
        if self.radix == 1:
            return x
        parts = tf.split(x, self.radix, axis=-1)
        out = parts[0]
        for part in parts[1:]:  # a chain of ADDs: TFLite Micro's int8 ADD_N is not assumed
            out = out + part
        return out

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([*shape[:-1], shape[-1] // self.radix])

    def get_config(self):
        return {**super().get_config(), "radix": self.radix}


@keras.saving.register_keras_serializable(package="edgezoo")
class RadixSoftmax(keras.layers.Layer):
    """r-softmax: softmax over the radix splits within each cardinal group; sigmoid for radix 1.

    (B, 1, 1, R * C) logits in cardinal-major order -> weights in radix-major order.
    """

    def __init__(self, radix, cardinality=1, **kwargs):
        super().__init__(**kwargs)
        self.radix, self.cardinality = int(radix), int(cardinality)
        if self.radix < 1 or self.cardinality < 1:
            raise ValueError(
                f"radix and cardinality must be at least 1, got {radix}, {cardinality}")

    def build(self, input_shape):
        if int(input_shape[-1]) % (self.radix * self.cardinality):
            raise ValueError(f"{input_shape[-1]} channels cannot be split into radix {self.radix} "
                             f"x cardinality {self.cardinality}")
        super().build(input_shape)

    def call(self, x):
        if self.radix == 1:
            return tf.sigmoid(x)
        channels = x.shape[-1]
        k, r = self.cardinality, self.radix
        y = tf.reshape(x, [-1, k, r, channels // (k * r)])  # (B, K, R, C/K)
        y = tf.transpose(y, [0, 1, 3, 2])  # (B, K, C/K, R): radix last for SOFTMAX
        y = tf.nn.softmax(y, axis=-1)
        y = tf.transpose(y, [0, 3, 1, 2])  # (B, R, K, C/K): radix-major, as the splits
        return tf.reshape(y, [-1, *x.shape[1:]])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        return {**super().get_config(), "radix": self.radix, "cardinality": self.cardinality}
