"""Learned class token prepended to a token sequence (ViT, DeiT, CSWin heads)."""
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="edgezoo")
class ClassToken(keras.layers.Layer):
    """Prepends one learned token: (B, N, D) -> (B, N + 1, D)."""

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.token = self.add_weight(
            name="token", shape=(1, 1, int(input_shape[-1])), initializer=self.initializer
        )
        super().build(input_shape)

    def call(self, x):
        batch = tf.shape(x)[0]
        token = tf.broadcast_to(tf.cast(self.token, x.dtype), [batch, 1, tf.shape(x)[-1]])
        return tf.concat([token, x], axis=1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[1] is None else input_shape[1] + 1
        return tf.TensorShape([input_shape[0], n, input_shape[2]])

    def get_config(self):
        return {**super().get_config(), "initializer": keras.initializers.serialize(self.initializer)}


@keras.saving.register_keras_serializable(package="edgezoo")
class TokenSelect(keras.layers.Layer):
    """Picks one token from a sequence: (B, N, D) -> (B, D); the class token by default."""

    def __init__(self, index=0, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, x):
        return x[:, self.index]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], input_shape[2]])

    def get_config(self):
        return {**super().get_config(), "index": self.index}
