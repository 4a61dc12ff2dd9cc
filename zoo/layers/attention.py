"""Multi-head self-attention with a pluggable attention kernel (dot-product by default)."""
import tensorflow as tf
import tf_keras as keras

from edgezoo.zoo.layers.pointwise_dense import PointwiseDense

ATTENTION_KERNELS = {}


def register_attention(name):
    """Register ``fn(q, k, v, dropout, training) -> context`` over (B, H, N, Dh) tensors.

    A kernel also takes (B, N, D) tensors: one-head attention passes them unsplit.
    """

    def wrap(fn):
        ATTENTION_KERNELS[name] = fn
        return fn

    return wrap


@register_attention("dot_product")
def dot_product_attention(q, k, v, dropout, training):
    """softmax(q k^T / sqrt(Dh)) v, as in "Attention Is All You Need"."""
    scale = tf.cast(q.shape[-1], q.dtype) ** -0.5
    weights = tf.nn.softmax(tf.matmul(q * scale, k, transpose_b=True), axis=-1)
    weights = dropout(weights, training=training)
    return tf.matmul(weights, v)


@keras.saving.register_keras_serializable(package="edgezoo")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Separate query/key/value projections, per-head attention, output projection.

    Heads are split with 4-D reshapes and transposes only, so the graph converts
    to TFLite builtins that TFLite Micro has. Parameter count equals a fused
    qkv projection (timm, HF): 4 * (D * D + D) with biases.
    """

    def __init__(self, num_heads, attention="dot_product", attention_dropout=0.0,
                 use_bias=True, pointwise_projections=False, **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTION_KERNELS:
            raise ValueError(
                f"unknown attention {attention!r}; known: {', '.join(sorted(ATTENTION_KERNELS))}"
            )
        self.num_heads = int(num_heads)
        self.attention = attention
        self.attention_dropout = float(attention_dropout)
        self.use_bias = bool(use_bias)
        # Set by the TFLite Micro rewrite (converters.dense_conv): projections as 1x1 convs.
        self.pointwise_projections = bool(pointwise_projections)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if dim % self.num_heads:
            raise ValueError(f"{self.name}: width {dim} is not divisible by {self.num_heads} heads")
        dense = dict(use_bias=self.use_bias, kernel_initializer="glorot_uniform")
        make = PointwiseDense if self.pointwise_projections else keras.layers.Dense
        self.query = make(dim, name="query", **dense)
        self.key = make(dim, name="key", **dense)
        self.value = make(dim, name="value", **dense)
        self.out = make(dim, name="out", **dense)
        for layer in (self.query, self.key, self.value, self.out):
            layer.build(input_shape)
        self.dropout = keras.layers.Dropout(self.attention_dropout)
        super().build(input_shape)

    def _split(self, x, n):
        d = x.shape[-1] // self.num_heads
        return tf.transpose(tf.reshape(x, [-1, n, self.num_heads, d]), [0, 2, 1, 3])

    def call(self, x, training=None):
        n, dim = x.shape[1], x.shape[-1]
        q, k, v = (self._split(p(x), n) for p in (self.query, self.key, self.value))
        context = ATTENTION_KERNELS[self.attention](q, k, v, self.dropout, training)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, n, dim])
        return self.out(context)

    def get_prunable_weights(self):
        """The query/key/value/output projection kernels (TFMOT's ``PrunableLayer`` interface)."""
        return [p.kernel for p in (self.query, self.key, self.value, self.out)]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "attention": self.attention,
            "attention_dropout": self.attention_dropout,
            "use_bias": self.use_bias,
            "pointwise_projections": self.pointwise_projections,
        }
