"""Learned position embeddings over a 2-D patch grid, resized when the grid changes."""
import math

import numpy as np
import tensorflow as tf
import tf_keras as keras


def resize_position_embedding(table, new_grid, num_prefix_tokens=1, old_grid=None):
    """Bicubically resize a (1, prefix + h*w, D) table to ``new_grid``; prefix tokens are kept.

    ``old_grid`` defaults to a square grid. This is how a model trained at one
    resolution is fine-tuned at another (ViT paper, section 3.2).
    """
    table = np.asarray(table)
    prefix, grid = table[:, :num_prefix_tokens], table[:, num_prefix_tokens:]
    n, dim = grid.shape[1], grid.shape[2]
    if old_grid is None:
        side = int(round(math.sqrt(n)))
        if side * side != n:
            raise ValueError(
                f"cannot infer the patch grid of a position table with {n} patch tokens; pass old_grid"
            )
        old_grid = (side, side)
    new_grid = tuple(int(g) for g in new_grid)
    if tuple(old_grid) == new_grid:
        return table
    image = grid.reshape(1, old_grid[0], old_grid[1], dim)
    resized = tf.image.resize(image, new_grid, method="bicubic").numpy()
    resized = resized.reshape(1, new_grid[0] * new_grid[1], dim).astype(table.dtype)
    return np.concatenate([prefix, resized], axis=1)


@keras.saving.register_keras_serializable(package="edgezoo")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned (1, prefix + h*w, D) table to a token sequence.

    Weights saved at another grid size are resized on load (``set_weights`` or
    ``.keras`` loading), so a model can change input resolution.
    """

    def __init__(self, grid, num_prefix_tokens=1, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.grid = tuple(int(g) for g in grid)
        self.num_prefix_tokens = int(num_prefix_tokens)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )

    def build(self, input_shape):
        length = self.num_prefix_tokens + self.grid[0] * self.grid[1]
        if input_shape[1] is not None and input_shape[1] != length:
            raise ValueError(
                f"{self.name}: expected {length} tokens for grid {self.grid} with "
                f"{self.num_prefix_tokens} prefix token(s), got {input_shape[1]}"
            )
        self.table = self.add_weight(
            name="table", shape=(1, length, int(input_shape[-1])), initializer=self.initializer
        )
        super().build(input_shape)

    def call(self, x):
        return x + tf.cast(self.table, x.dtype)

    def _fit(self, value):
        value = np.asarray(value)
        if value.shape == tuple(self.table.shape):
            return value
        return resize_position_embedding(value, self.grid, self.num_prefix_tokens)

    def set_weights(self, weights):
        super().set_weights([self._fit(weights[0])])

    def load_own_variables(self, store):
        self.table.assign(self._fit(store["0"]))

    def get_config(self):
        return {
            **super().get_config(),
            "grid": list(self.grid),
            "num_prefix_tokens": self.num_prefix_tokens,
            "initializer": keras.initializers.serialize(self.initializer),
        }
