"""Multi-head cross-attention: queries from one array, keys and values from another (Perceiver).

Projection widths follow the Perceiver authors' ``Attention`` module:
``qk_channels`` (default: the key-value input's width, the Perceiver's
``shape_for_attn='kv'``), ``v_channels`` (default: ``qk_channels``) and
``output_channels`` (default: the query input's width, so the result can be
added back to the queries). Heads are split with 4-D reshapes and transposes
only, and the attention maths is a kernel from the shared registry.
"""
import tensorflow as tf
import tf_keras as keras

from edgezoo.zoo.layers.attention import ATTENTION_KERNELS
from edgezoo.zoo.layers.pointwise_dense import PointwiseDense


@keras.saving.register_keras_serializable(package="edgezoo")
class CrossAttention(keras.layers.Layer):
    """[queries (B, Nq, Cq), inputs (B, Nkv, Ckv)] -> (B, Nq, output_channels)."""

    def __init__(self, num_heads=1, qk_channels=None, v_channels=None, output_channels=None,
                 attention="dot_product", attention_dropout=0.0, use_bias=True,
                 pointwise_projections=False, **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTION_KERNELS:
            raise ValueError(
                f"unknown attention {attention!r}; known: {', '.join(sorted(ATTENTION_KERNELS))}"
            )
        self.num_heads = int(num_heads)
        self.qk_channels = None if qk_channels is None else int(qk_channels)
        self.v_channels = None if v_channels is None else int(v_channels)
        self.output_channels = None if output_channels is None else int(output_channels)
        self.attention = attention
        self.attention_dropout = float(attention_dropout)
        self.use_bias = bool(use_bias)
        # Set by the TFLite Micro rewrite (converters.dense_conv): projections as 1x1 convs.
        self.pointwise_projections = bool(pointwise_projections)

    def _widths(self, q_shape, kv_shape):
        qk = self.qk_channels or int(kv_shape[-1])
        v = self.v_channels or qk
        out = self.output_channels or int(q_shape[-1])
        return qk, v, out

    def build(self, input_shape):
        q_shape, kv_shape = (tf.TensorShape(s) for s in input_shape)
        qk, v, out = self._widths(q_shape, kv_shape)
        for what, width in (("qk_channels", qk), ("v_channels", v)):
            if width % self.num_heads:
                raise ValueError(f"{self.name}: {what} {width} is not divisible by "
                                 f"{self.num_heads} heads")
        dense = dict(use_bias=self.use_bias, kernel_initializer="glorot_uniform")
        make = PointwiseDense if self.pointwise_projections else keras.layers.Dense
        self.query = make(qk, name="query", **dense)
        self.key = make(qk, name="key", **dense)
        self.value = make(v, name="value", **dense)
        self.out = make(out, name="out", **dense)
        self.query.build(q_shape)
        self.key.build(kv_shape)
        self.value.build(kv_shape)
        self.out.build(q_shape[:-1].concatenate([v]))
        self.dropout = keras.layers.Dropout(self.attention_dropout)
        super().build(input_shape)

    def _split(self, x, n):
        d = x.shape[-1] // self.num_heads
        return tf.transpose(tf.reshape(x, [-1, n, self.num_heads, d]), [0, 2, 1, 3])

    def call(self, inputs, training=None):
        queries, kv = inputs
        nq, nkv = queries.shape[1], kv.shape[1]
        q, k, v = self.query(queries), self.key(kv), self.value(kv)
        if self.num_heads == 1:
            # One head attends over (B, N, C) as it is. Splitting it anyway gives size-1 transposes
            # that the TF Lite converter folds, with the trailing reshape, into one 4-D-input
            # FULLY_CONNECTED whose declared output rank is wrong once a non-zero bias is fused
            # (seen on perceiver_io_micro's decoder: the next MEAN fails to prepare).
            return self.out(ATTENTION_KERNELS[self.attention](q, k, v, self.dropout, training))
        q, k, v = self._split(q, nq), self._split(k, nkv), self._split(v, nkv)
        context = ATTENTION_KERNELS[self.attention](q, k, v, self.dropout, training)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, nq, self.value.units])
        return self.out(context)

    def get_prunable_weights(self):
        """The query/key/value/output projection kernels (TFMOT's ``PrunableLayer`` interface)."""
        return [p.kernel for p in (self.query, self.key, self.value, self.out)]

    def compute_output_shape(self, input_shape):
        q_shape, kv_shape = (tf.TensorShape(s) for s in input_shape)
        return q_shape[:-1].concatenate([self._widths(q_shape, kv_shape)[2]])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "qk_channels": self.qk_channels,
            "v_channels": self.v_channels,
            "output_channels": self.output_channels,
            "attention": self.attention,
            "attention_dropout": self.attention_dropout,
            "use_bias": self.use_bias,
            "pointwise_projections": self.pointwise_projections,
        }
