"""DETR's own layers: the fixed 2-D sine positions, multi-head attention with separate query,
key and value inputs, and the learned object queries. Each round-trips through get_config."""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from edgezoo.zoo.layers.attention import ATTENTION_KERNELS
from edgezoo.zoo.layers.pointwise_dense import PointwiseDense


def sine_positions(height, width, dim, temperature=10000.0, normalize=True, scale=2 * np.pi,
                   offset=0.0):
    """(height * width, dim) DETR positions of an unpadded feature map: the first half encodes
    the row, the second the column, sines and cosines interleaved (DETR's
    ``PositionEmbeddingSine``, mask all ones). Deformable DETR offsets the cumulative coordinate
    by -0.5 before normalising (``offset=0.5``)."""
    half = dim // 2
    y = np.arange(1, height + 1, dtype=np.float32)[:, None].repeat(width, 1)
    x = np.arange(1, width + 1, dtype=np.float32)[None, :].repeat(height, 0)
    if normalize:
        y = (y - offset) / (y[-1:, :] + 1e-6) * scale
        x = (x - offset) / (x[:, -1:] + 1e-6) * scale
    dim_t = temperature ** (2 * (np.arange(half) // 2) / half).astype(np.float32)

    def encode(v):
        p = v[..., None] / dim_t
        return np.stack([np.sin(p[..., 0::2]), np.cos(p[..., 1::2])], -1).reshape(height, width, -1)

    return np.concatenate([encode(y), encode(x)], -1).reshape(height * width, dim).astype(np.float32)


@keras.saving.register_keras_serializable(package="edgezoo")
class AddSinePositions(keras.layers.Layer):
    """(B, H * W, D) feature tokens + their fixed sine positions (a constant in the graph)."""

    def __init__(self, height, width, temperature=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width, self.temperature = int(height), int(width), float(temperature)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if int(input_shape[1]) != self.height * self.width:
            raise ValueError(f"{self.name}: {input_shape[1]} tokens, expected "
                             f"{self.height}x{self.width}")
        self.positions = tf.constant(sine_positions(self.height, self.width, dim,
                                                    self.temperature)[None])
        super().build(input_shape)

    def call(self, x):
        return x + tf.cast(self.positions, x.dtype)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="edgezoo")
class ObjectQueries(keras.layers.Layer):
    """The learned query positions (num_queries, D), one copy per image: (B, Nq, D), taking the
    batch size from any input tensor."""

    def __init__(self, num_queries, dim, **kwargs):
        super().__init__(**kwargs)
        self.num_queries, self.dim = int(num_queries), int(dim)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.num_queries, self.dim),
            initializer=keras.initializers.RandomNormal(stddev=1.0))
        super().build(input_shape)

    def call(self, x):
        batch = tf.shape(x)[0]
        return tf.tile(self.embeddings[None], [batch, 1, 1])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], self.num_queries, self.dim])

    def get_config(self):
        return {**super().get_config(), "num_queries": self.num_queries, "dim": self.dim}


@keras.saving.register_keras_serializable(package="edgezoo")
class DetrAttention(keras.layers.Layer):
    """[query input, key input, value input] -> attention output, each (B, N, D): DETR adds
    positions to queries and keys only, so the three inputs are separate."""

    def __init__(self, num_heads, attention_dropout=0.0, pointwise_projections=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.attention_dropout = float(attention_dropout)
        # Set by the TFLite Micro rewrite (converters.dense_conv): projections as 1x1 convs.
        self.pointwise_projections = bool(pointwise_projections)

    def build(self, input_shape):
        dim = int(input_shape[0][-1])
        if dim % self.num_heads:
            raise ValueError(f"{self.name}: width {dim} is not divisible by {self.num_heads} heads")
        make = PointwiseDense if self.pointwise_projections else keras.layers.Dense
        self.query, self.key, self.value, self.out = (make(dim, name=n) for n in
                                                      ("query", "key", "value", "out"))
        for layer, shape in zip((self.query, self.key, self.value, self.out),
                                (*input_shape, input_shape[0])):
            layer.build(shape)
        self.dropout = keras.layers.Dropout(self.attention_dropout)
        super().build(input_shape)

    def _split(self, x):
        n, d = x.shape[1], x.shape[-1] // self.num_heads
        return tf.transpose(tf.reshape(x, [-1, n, self.num_heads, d]), [0, 2, 1, 3])

    def call(self, inputs, training=None):
        q_in, k_in, v_in = inputs
        q, k, v = (self._split(p(x)) for p, x in ((self.query, q_in), (self.key, k_in),
                                                  (self.value, v_in)))
        context = ATTENTION_KERNELS["dot_product"](q, k, v, self.dropout, training)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, q_in.shape[1],
                                                                   q_in.shape[-1]])
        return self.out(context)

    def get_prunable_weights(self):
        return [p.kernel for p in (self.query, self.key, self.value, self.out)]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "attention_dropout": self.attention_dropout,
                "pointwise_projections": self.pointwise_projections}


@keras.saving.register_keras_serializable(package="edgezoo")
class ZerosLike(keras.layers.Layer):
    """Zeros of the input's shape: where DETR's decoder starts (its queries are positions)."""

    def call(self, x):
        return tf.zeros_like(x)


@keras.saving.register_keras_serializable(package="edgezoo")
class LearnedPositions2D(keras.layers.Layer):
    """The seed article's learned positions: (B, H * W, D) features -> positions +
    ``feature_scale`` x features, the position of token (h, w) being [column_embed[w],
    row_embed[h]] (each D / 2 wide, ``max_size`` rows and columns learned)."""

    def __init__(self, height, width, max_size=50, feature_scale=0.1, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)
        self.max_size, self.feature_scale = int(max_size), float(feature_scale)
        if max(self.height, self.width) > self.max_size:
            raise ValueError(f"{self.name}: a {self.height}x{self.width} feature map needs more "
                             f"than the {self.max_size} learned rows and columns")

    def build(self, input_shape):
        half = int(input_shape[-1]) // 2
        # torch.rand, as the seed article initialises them; one initializer each (a shared
        # unseeded one would give both the same values)
        self.row_embed = self.add_weight(name="row_embed", shape=(self.max_size, half),
                                         initializer=keras.initializers.RandomUniform(0.0, 1.0))
        self.col_embed = self.add_weight(name="col_embed", shape=(self.max_size, half),
                                         initializer=keras.initializers.RandomUniform(0.0, 1.0))
        super().build(input_shape)

    def call(self, x):
        cols = tf.tile(self.col_embed[None, : self.width], [self.height, 1, 1])
        rows = tf.tile(self.row_embed[: self.height, None], [1, self.width, 1])
        pos = tf.reshape(tf.concat([cols, rows], -1), [1, self.height * self.width, -1])
        return pos + self.feature_scale * x

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "max_size": self.max_size, "feature_scale": self.feature_scale}
