"""Cross-shaped window self-attention with LePE (CSWin Transformer, arXiv 2107.00652).

The layer takes the output of a block's fused query/key/value projection as a
(B, H, W, 3C) feature map and returns (B, H, W, C). Half of the heads attend
within vertical stripes (H x sw windows), the other half within horizontal
stripes (sw x W windows), in parallel on the two halves of the channels; the
two results are concatenated. Locally-enhanced positional encoding (LePE) adds
a 3x3 depthwise convolution of V, computed inside each stripe window with zero
padding at its border, to the attention output. With ``stripe_width=None`` it
is plain global attention (one branch, all heads) plus LePE over the whole map.

Windows are cut with 4-D reshapes and transposes only (the batch and window
axes are folded together), so the graph converts to TFLite builtins that
TFLite Micro has.
"""
import tensorflow as tf
import tf_keras as keras

from edgezoo.zoo.layers.attention import ATTENTION_KERNELS


def stripe_windows(x, window):
    """(B, H, W, C) -> (B * nWindows, wh, ww, C) for a stripe window (wh = H or ww = W)."""
    h, w, c = x.shape[1:]
    wh, ww = window
    if ww == w:  # horizontal stripes (or the whole map): rows are already contiguous
        return tf.reshape(x, [-1, wh, w, c])
    if wh != h:
        raise ValueError(f"window {window} on a {h}x{w} map is not a stripe")
    x = tf.reshape(x, [-1, h, w // ww, ww * c])
    x = tf.transpose(x, [0, 2, 1, 3])  # (B, nW, H, ww * C)
    return tf.reshape(x, [-1, h, ww, c])


def merge_windows(x, size):
    """Inverse of :func:`stripe_windows`: (B * nWindows, wh, ww, C) -> (B, H, W, C)."""
    h, w = size
    wh, ww, c = x.shape[1:]
    if ww == w:
        return tf.reshape(x, [-1, h, w, c])
    x = tf.reshape(x, [-1, w // ww, h, ww * c])
    x = tf.transpose(x, [0, 2, 1, 3])  # (B, H, nW, ww * C)
    return tf.reshape(x, [-1, h, w, c])


@keras.saving.register_keras_serializable(package="edgezoo")
class CrossShapedWindowAttention(keras.layers.Layer):
    """Cross-shaped window attention + LePE on a fused (B, H, W, 3C) query/key/value map.

    The channels are ordered [q | k | v] as the reference's ``qkv`` Linear; in the
    cross-shaped form the first half of each goes to the vertical-stripe heads and
    the second half to the horizontal-stripe heads. The only weights are the LePE
    depthwise 3x3 kernels and biases: 10 per channel, whichever form.
    """

    def __init__(self, num_heads, stripe_width=None, attention="dot_product",
                 attention_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTION_KERNELS:
            raise ValueError(
                f"unknown attention {attention!r}; known: {', '.join(sorted(ATTENTION_KERNELS))}"
            )
        self.num_heads = int(num_heads)
        self.stripe_width = None if stripe_width is None else int(stripe_width)
        self.attention = attention
        self.attention_dropout = float(attention_dropout)
        if self.stripe_width is not None and self.num_heads % 2:
            raise ValueError(f"cross-shaped attention splits the heads in two: "
                             f"{self.num_heads} heads is odd")

    @property
    def branches(self):
        """(name, heads, window for an H x W map) of each parallel branch."""
        if self.stripe_width is None:
            return [("global", self.num_heads, lambda h, w: (h, w))]
        sw, half = self.stripe_width, self.num_heads // 2
        return [("vertical", half, lambda h, w: (h, sw)),
                ("horizontal", half, lambda h, w: (sw, w))]

    def build(self, input_shape):
        h, w, c3 = (int(s) for s in input_shape[1:])
        if c3 % 3:
            raise ValueError(f"{self.name}: expected a fused q|k|v map, got {c3} channels")
        dim = c3 // 3
        if self.stripe_width is not None and (h % self.stripe_width or w % self.stripe_width):
            raise ValueError(f"{self.name}: stripe width {self.stripe_width} does not divide "
                             f"the {h}x{w} map")
        width = dim // len(self.branches)
        heads = self.branches[0][1]
        if width % heads:
            raise ValueError(f"{self.name}: branch width {width} is not divisible by {heads} heads")
        self.lepe = []
        for branch, _, _ in self.branches:
            conv = keras.layers.DepthwiseConv2D(3, padding="same", name=f"lepe_{branch}")
            conv.build((None, None, None, width))
            self.lepe.append(conv)
        self.dropout = keras.layers.Dropout(self.attention_dropout)
        super().build(input_shape)

    def _heads(self, x, heads):
        n, c = x.shape[1] * x.shape[2], x.shape[-1]
        x = tf.reshape(x, [-1, n, heads, c // heads])
        return tf.transpose(x, [0, 2, 1, 3])  # (Bw, heads, n, d)

    def _branch(self, q, k, v, heads, window, lepe, training):
        h, w = q.shape[1:3]
        q, k, v = (stripe_windows(t, window) for t in (q, k, v))
        positional = lepe(v)  # zero padding at each window's border, as in the reference
        context = ATTENTION_KERNELS[self.attention](
            self._heads(q, heads), self._heads(k, heads), self._heads(v, heads),
            self.dropout, training)
        wh, ww, c = v.shape[1:]
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, wh, ww, c])
        return merge_windows(context + positional, (h, w))

    def call(self, qkv, training=None):
        h, w = qkv.shape[1:3]
        branches = self.branches
        # q parts, k parts, v parts, as channel slices: XNNPACK runs no SPLIT of more than 4
        # outputs (two branches make 6), and a slice is the same copy in every runtime
        width = qkv.shape[-1] // (3 * len(branches))
        parts = [qkv[..., i * width:(i + 1) * width] for i in range(3 * len(branches))]
        outs = []
        for i, (_, heads, window) in enumerate(branches):
            q, k, v = parts[i], parts[len(branches) + i], parts[2 * len(branches) + i]
            outs.append(self._branch(q, k, v, heads, window(h, w), self.lepe[i], training))
        return outs[0] if len(outs) == 1 else tf.concat(outs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([*input_shape[:-1], input_shape[-1] // 3])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "stripe_width": self.stripe_width,
            "attention": self.attention,
            "attention_dropout": self.attention_dropout,
        }
