"""A Dense layer computed as a 1x1 convolution over the token axis.

A Dense layer applied to (B, N, C) tokens is exactly a 1x1 convolution over a
(B, 1, N, C) image. The kernel keeps its (C, units) shape, so weights copy
between the two unchanged. TFLite converts it to CONV_2D instead of
FULLY_CONNECTED (see edgezoo.converters.dense_conv for why that matters).
"""
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="edgezoo")
class PointwiseDense(keras.layers.Dense):
    """A Dense layer computed as a 1x1 CONV_2D over the token axis (same weights, same maths)."""

    def get_prunable_weights(self):
        """The kernel, as for Dense (TFMOT's registry matches exact classes, not subclasses)."""
        return [self.kernel]

    def call(self, x):
        shape = x.shape
        if len(shape) == 2:
            y = tf.reshape(x, [-1, 1, 1, shape[-1]])
        elif len(shape) == 3:
            y = tf.reshape(x, [-1, 1, shape[1], shape[-1]])
        else:
            y = x
        kernel = tf.reshape(tf.cast(self.kernel, x.dtype), [1, 1, *self.kernel.shape])
        y = tf.nn.conv2d(y, kernel, strides=1, padding="VALID")
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, x.dtype))
        if self.activation is not None:
            y = self.activation(y)
        return tf.reshape(y, [-1, *shape[1:-1], self.units]) if len(shape) != 4 else y

