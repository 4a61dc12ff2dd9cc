"""Seeded angle initializer: every quantum layer gets its own (TFQ's default is one shared object)."""
import numpy as np
import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="edgezoo.quantum")
class AngleInitializer(keras.initializers.Initializer):
    """Uniform in [minval, maxval) from a NumPy generator seeded with ``seed``.

    ``mirror`` ({symbol: source symbol}) with ``symbols`` (the weight order) copies the
    source's value, so identity blocks U(θ)U(θ)† start as the identity.
    """

    def __init__(self, seed, minval=0.0, maxval=2 * np.pi, symbols=(), mirror=None):
        self.seed, self.minval, self.maxval = int(seed), float(minval), float(maxval)
        self.symbols, self.mirror = list(symbols), dict(mirror or {})

    def __call__(self, shape, dtype=None, **kwargs):
        values = np.random.default_rng(self.seed).uniform(self.minval, self.maxval, size=shape)
        if self.mirror:
            index = {s: i for i, s in enumerate(self.symbols)}
            for target, source in self.mirror.items():
                values[index[target]] = values[index[source]]
        return tf.constant(values, dtype=dtype or tf.float32)

    def get_config(self):
        return {"seed": self.seed, "minval": self.minval, "maxval": self.maxval,
                "symbols": self.symbols, "mirror": self.mirror}
