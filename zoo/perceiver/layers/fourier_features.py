"""Fourier position features of a grid (Perceiver, Jaegle et al., arXiv 2103.03206, Sec. 3.2).

Each position ``x_d`` along an axis of size ``n`` is a point of ``linspace(-1, 1, n)``.
Per axis, ``num_bands`` frequencies ``f_k`` are spaced linearly from 1 to
``max_resolution / 2`` (the Nyquist frequency of the largest grid the model
sees) and the features are ``sin(pi f_k x_d)`` and ``cos(pi f_k x_d)``, with the
raw positions put in front. Channel order is that of the authors' code:
``[x_1..x_d, sin(all bands of axis 1) .. sin(axis d), cos(axis 1) .. cos(axis d)]``,
``d * (2 * num_bands + 1)`` channels in all.

The features depend only on the static grid, so they are a constant computed
once when the layer is made; no weights.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras


def fourier_channels(num_axes, num_bands, concat_pos=True, sine_only=False):
    """Number of feature channels for ``num_axes`` spatial axes."""
    per_axis = num_bands * (1 if sine_only else 2) + (1 if concat_pos else 0)
    return int(num_axes) * per_axis


def fourier_position_features(index_dims, num_bands, max_resolution=None, concat_pos=True,
                              sine_only=False):
    """(prod(index_dims), channels) float32 array of the features of every grid point.

    Grid points are in row-major order (the order of a (H, W, C) -> (H * W, C) reshape).
    """
    index_dims = tuple(int(n) for n in index_dims)
    max_resolution = index_dims if max_resolution is None else tuple(max_resolution)
    if len(max_resolution) != len(index_dims):
        raise ValueError(f"max_resolution {max_resolution} has {len(max_resolution)} axes, the "
                         f"grid {index_dims} has {len(index_dims)}")
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float64) for n in index_dims]
    pos = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(index_dims))
    freqs = np.stack([np.linspace(1.0, res / 2.0, num_bands) for res in max_resolution])
    angles = np.pi * (pos[:, :, None] * freqs[None]).reshape(len(pos), -1)  # axis-major
    parts = [np.sin(angles)] if sine_only else [np.sin(angles), np.cos(angles)]
    if concat_pos:
        parts.insert(0, pos)
    return np.concatenate(parts, axis=-1).astype(np.float32)


@keras.saving.register_keras_serializable(package="edgezoo")
class FourierPositionEncoding(keras.layers.Layer):
    """(B, ...) -> (B, prod(index_dims), channels): the grid's Fourier features, per sample.

    ``index_dims=None`` takes the grid from the input's spatial axes (input shape
    ``(B, *grid, C)``), so calling it on an image gives one feature row per pixel
    in the order of a row-major flatten. ``max_resolution=None`` uses the grid.
    """

    def __init__(self, num_bands, index_dims=None, max_resolution=None, concat_pos=True,
                 sine_only=False, **kwargs):
        super().__init__(**kwargs)
        if int(num_bands) < 1:
            raise ValueError(f"{self.name}: num_bands must be at least 1, got {num_bands}")
        self.num_bands = int(num_bands)
        self.index_dims = None if index_dims is None else tuple(int(n) for n in index_dims)
        self.max_resolution = None if max_resolution is None else tuple(
            float(r) for r in max_resolution)
        self.concat_pos = bool(concat_pos)
        self.sine_only = bool(sine_only)
        self._features = None

    def _grid(self, input_shape):
        if self.index_dims is not None:
            return self.index_dims
        grid = tuple(input_shape[1:-1])
        if not grid or any(n is None for n in grid):
            raise ValueError(f"{self.name}: needs static spatial axes, got input shape "
                             f"{tuple(input_shape)}")
        return tuple(int(n) for n in grid)

    def build(self, input_shape):
        grid = self._grid(tf.TensorShape(input_shape).as_list())
        self._features = fourier_position_features(grid, self.num_bands, self.max_resolution,
                                                   self.concat_pos, self.sine_only)
        super().build(input_shape)

    def call(self, x):
        features = tf.constant(self._features[None], dtype=self.compute_dtype)
        return tf.broadcast_to(features, tf.concat([tf.shape(x)[:1], tf.shape(features)[1:]], 0))

    def compute_output_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape).as_list()
        grid = self._grid(input_shape)
        return tf.TensorShape([input_shape[0], int(np.prod(grid)),
                               fourier_channels(len(grid), self.num_bands, self.concat_pos,
                                                self.sine_only)])

    def get_config(self):
        return {
            **super().get_config(),
            "num_bands": self.num_bands,
            "index_dims": None if self.index_dims is None else list(self.index_dims),
            "max_resolution": None if self.max_resolution is None else list(self.max_resolution),
            "concat_pos": self.concat_pos,
            "sine_only": self.sine_only,
        }
