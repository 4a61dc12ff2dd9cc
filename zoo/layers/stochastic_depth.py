"""Stochastic depth (drop path): drops a whole residual branch per sample while training."""
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="edgezoo")
class StochasticDepth(keras.layers.Layer):
    """Zeroes the branch for a fraction ``rate`` of samples and rescales the rest (Huang et al. 2016)."""

    def __init__(self, rate=0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"stochastic depth rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = [tf.shape(x)[0]] + [1] * (len(x.shape) - 1)
        mask = tf.floor(keep + tf.random.uniform(shape, dtype=x.dtype))
        return x / keep * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
