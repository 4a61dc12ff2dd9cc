"""A learned array, the same for every sample: the Perceiver's latents and its decoder queries."""
import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="edgezoo")
class LatentArray(keras.layers.Layer):
    """(B, ...) -> (B, num_latents, latent_dim): one learned (N, D) array broadcast over the batch.

    The input only gives the batch size. Initialized as in the authors' code:
    truncated normal with standard deviation 0.02.
    """

    def __init__(self, num_latents, latent_dim, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_latents = int(num_latents)
        self.latent_dim = int(latent_dim)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.TruncatedNormal(stddev=0.02))

    def build(self, input_shape):
        self.latents = self.add_weight(name="latents", shape=(self.num_latents, self.latent_dim),
                                       initializer=self.initializer)
        super().build(input_shape)

    def call(self, x):
        latents = tf.cast(self.latents, self.compute_dtype)[None]
        return tf.broadcast_to(latents, [tf.shape(x)[0], self.num_latents, self.latent_dim])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self.num_latents, self.latent_dim])

    def get_config(self):
        return {
            **super().get_config(),
            "num_latents": self.num_latents,
            "latent_dim": self.latent_dim,
            "initializer": keras.initializers.serialize(self.initializer),
        }
