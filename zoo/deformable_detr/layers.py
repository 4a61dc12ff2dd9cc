"""Deformable DETR's own layers: multi-scale deformable attention, the level positions, the
encoder's reference points, the learned queries and the box refinement of the heads.

Bilinear sampling is built from GATHER (indices from FLOOR and CAST) and arithmetic, never a
custom op: each sampling point reads the four pixels around it, a pixel outside the map gets
weight 0 and a clamped (valid) index, which is ``grid_sample(..., padding_mode="zeros",
align_corners=False)``: pixel coordinate = location x size - 0.5.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras


def level_sine_positions(height, width, dim):
    """Deformable DETR's sine positions of one level: DETR's, with the cumulative coordinate
    offset by -0.5 before normalising (pixel centres)."""
    from edgezoo.zoo.detr.layers import sine_positions

    return sine_positions(height, width, dim, offset=0.5)


def encoder_reference_points(shapes):
    """(sum H*W, 2) normalised (x, y) pixel centres of every level, in token order."""
    points = []
    for h, w in shapes:
        ys, xs = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()], -1))
    return np.concatenate(points).astype(np.float32)


def _shapes(value):
    return [tuple(int(v) for v in s) for s in value]


@keras.saving.register_keras_serializable(package="edgezoo")
class LevelPositions(keras.layers.Layer):
    """(B, sum H*W, D) tokens + each level's sine positions + its learned level embedding."""

    def __init__(self, shapes, **kwargs):
        super().__init__(**kwargs)
        self.shapes = _shapes(shapes)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.level_embed = self.add_weight(name="level_embed", shape=(len(self.shapes), dim),
                                           initializer="random_normal")
        self.positions = tf.constant(np.concatenate(
            [level_sine_positions(h, w, dim) for h, w in self.shapes])[None])
        self.level_index = tf.constant(np.concatenate(
            [np.full(h * w, k, np.int32) for k, (h, w) in enumerate(self.shapes)]))
        super().build(input_shape)

    def call(self, x):
        levels = tf.gather(self.level_embed, self.level_index)[None]
        return x + tf.cast(self.positions, x.dtype) + levels

    def get_config(self):
        return {**super().get_config(), "shapes": self.shapes}


@keras.saving.register_keras_serializable(package="edgezoo")
class EncoderReferencePoints(keras.layers.Layer):
    """The encoder's reference points (B, sum H*W, 2): every token's own pixel centre."""

    def __init__(self, shapes, **kwargs):
        super().__init__(**kwargs)
        self.shapes = _shapes(shapes)

    def call(self, x):
        points = tf.constant(encoder_reference_points(self.shapes)[None])
        return tf.tile(points, [tf.shape(x)[0], 1, 1])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], sum(h * w for h, w in self.shapes), 2])

    def get_config(self):
        return {**super().get_config(), "shapes": self.shapes}


@keras.saving.register_keras_serializable(package="edgezoo")
class QueryEmbeddings(keras.layers.Layer):
    """The learned (num_queries, 2 D) query embeddings, split into [positions, targets], each
    (B, Q, D): the decoder starts from the targets."""

    def __init__(self, num_queries, dim, **kwargs):
        super().__init__(**kwargs)
        self.num_queries, self.dim = int(num_queries), int(dim)

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(self.num_queries, 2 * self.dim),
                                          initializer=keras.initializers.RandomNormal(stddev=1.0))
        super().build(input_shape)

    def call(self, x):
        tiled = tf.tile(self.embeddings[None], [tf.shape(x)[0], 1, 1])
        return [tiled[..., : self.dim], tiled[..., self.dim :]]

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape([input_shape[0], self.num_queries, self.dim])
        return [shape, shape]

    def get_config(self):
        return {**super().get_config(), "num_queries": self.num_queries, "dim": self.dim}


def inverse_sigmoid(x, eps=1e-5):
    x = tf.clip_by_value(x, 0.0, 1.0)
    return tf.math.log(tf.maximum(x, eps) / tf.maximum(1.0 - x, eps))


@keras.saving.register_keras_serializable(package="edgezoo")
class RefineBoxes(keras.layers.Layer):
    """[box deltas (B, Q, 4), reference points (B, Q, 2 or 4)] -> boxes: sigmoid(delta +
    inverse_sigmoid(reference)) on the reference's coordinates (centre only for 2)."""

    def call(self, inputs):
        delta, reference = inputs
        ref = inverse_sigmoid(reference)
        if reference.shape[-1] == 2:
            ref = tf.concat([ref, tf.zeros_like(ref)], -1)
        return tf.sigmoid(delta + ref)


@keras.saving.register_keras_serializable(package="edgezoo")
class MultiScaleDeformableAttention(keras.layers.Layer):
    """[queries (B, Q, D) (positions added), values (B, sum H*W, D), reference points (B, Q, 2)]
    -> (B, Q, D): each head samples ``num_points`` points per level around the reference point
    (offsets in pixels of that level), weighted by a softmax over all levels' points."""

    def __init__(self, shapes, num_heads=8, num_points=4, **kwargs):
        super().__init__(**kwargs)
        self.shapes = _shapes(shapes)
        self.num_heads, self.num_points = int(num_heads), int(num_points)

    def build(self, input_shape):
        dim = int(input_shape[0][-1])
        if dim % self.num_heads:
            raise ValueError(f"{self.name}: width {dim} is not divisible by {self.num_heads} heads")
        heads, levels, points = self.num_heads, len(self.shapes), self.num_points
        self.sampling_offsets = keras.layers.Dense(heads * levels * points * 2,
                                                   name="sampling_offsets")
        self.attention_weights = keras.layers.Dense(heads * levels * points,
                                                    name="attention_weights")
        self.value_proj = keras.layers.Dense(dim, name="value_proj")
        self.output_proj = keras.layers.Dense(dim, name="output_proj")
        for layer, shape in ((self.sampling_offsets, input_shape[0]),
                             (self.attention_weights, input_shape[0]),
                             (self.value_proj, input_shape[1]), (self.output_proj, input_shape[0])):
            layer.build(shape)
        super().build(input_shape)

    def _sample(self, value, height, width, x, y):
        """Bilinear samples (B*H, Q*P, Dh) of ``value`` (B*H, h*w, Dh) at pixel coordinates
        ``x``, ``y`` (B*H, Q*P); zero outside the map. Indices are int32 from FLOOR and CAST,
        so the converter cannot quantize them; only the weights are int8."""
        x0f, y0f = tf.floor(x), tf.floor(y)
        x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
        fx, fy = x - x0f, y - y0f
        out = 0.0
        for xi, wx in ((x0, 1.0 - fx), (x0 + 1, fx)):
            for yi, wy in ((y0, 1.0 - fy), (y0 + 1, fy)):
                inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
                index = (tf.clip_by_value(yi, 0, height - 1) * width
                         + tf.clip_by_value(xi, 0, width - 1))
                picked = tf.gather(value, index, batch_dims=1)
                weight = wx * wy * tf.cast(inside, x.dtype)
                out += picked * weight[..., None]
        return out

    def call(self, inputs):
        # every tensor stays at most 4-D: TFLite's STRIDED_SLICE and TFLite Micro's kernels
        # take no more
        query, value_in, reference = inputs
        q, dim = query.shape[1], query.shape[-1]
        heads, levels, points = self.num_heads, len(self.shapes), self.num_points
        hd = dim // heads
        value = tf.reshape(self.value_proj(value_in), [-1, value_in.shape[1], heads, hd])
        value = tf.reshape(tf.transpose(value, [0, 2, 1, 3]), [-1, value_in.shape[1], hd])
        offsets = tf.reshape(self.sampling_offsets(query), [-1, q, heads, levels * points * 2])
        offsets = tf.transpose(offsets, [0, 2, 1, 3])  # (B, H, Q, L*P*2)
        weights = tf.nn.softmax(tf.reshape(self.attention_weights(query),
                                           [-1, q, heads, levels * points]), -1)
        weights = tf.transpose(weights, [0, 2, 1, 3])  # (B, H, Q, L*P)
        # the reference point of each query, once per sampling point: (B, 1, Q*P, 2)
        ref = tf.reshape(tf.tile(reference[:, :, None, :], [1, 1, points, 1]), [-1, 1, q * points, 2])
        out, start = 0.0, 0
        for level, (h, w) in enumerate(self.shapes):
            step = offsets[..., level * points * 2 : (level + 1) * points * 2]
            loc = ref + tf.reshape(step, [-1, heads, q * points, 2]) / tf.constant([w, h], query.dtype)
            loc = tf.reshape(loc, [-1, q * points, 2])  # (B*H, Q*P, 2)
            x = loc[..., 0] * w - 0.5
            y = loc[..., 1] * h - 0.5
            sampled = self._sample(value[:, start : start + h * w], h, w, x, y)
            wl = tf.reshape(weights[..., level * points : (level + 1) * points], [-1, q * points, 1])
            # MEAN x points, not SUM: TFLite Micro's int8 SUM differs from LiteRT's reference
            # kernel (120 LSB measured on identical inputs), its MEAN does not
            out += tf.reduce_mean(tf.reshape(sampled * wl, [-1, q, points, hd]), 2) * float(points)
            start += h * w
        out = tf.transpose(tf.reshape(out, [-1, heads, q, hd]), [0, 2, 1, 3])
        return self.output_proj(tf.reshape(out, [-1, q, dim]))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "shapes": self.shapes, "num_heads": self.num_heads,
                "num_points": self.num_points}


@keras.saving.register_keras_serializable(package="edgezoo")
class GroupNorm(keras.layers.Layer):
    """GroupNorm over the channels of (B, H, W, C) maps, its statistics taken with MEAN: Keras's
    GroupNormalization sums with weighted moments, and TFLite Micro's int8 SUM differs from
    LiteRT's reference kernel by up to 167 LSB on identical inputs, while int8 MEAN agrees."""

    def __init__(self, groups=32, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.groups, self.epsilon = int(groups), float(epsilon)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels % self.groups:
            raise ValueError(f"{self.name}: {channels} channels do not split into {self.groups} groups")
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        g = tf.reshape(x, [-1, h * w, self.groups, c // self.groups])
        mean = tf.reduce_mean(tf.reduce_mean(g, axis=3, keepdims=True), axis=1, keepdims=True)
        centred = g - mean
        var = tf.reduce_mean(tf.reduce_mean(tf.square(centred), axis=3, keepdims=True), axis=1,
                             keepdims=True)
        y = tf.reshape(centred * tf.math.rsqrt(var + self.epsilon), [-1, h, w, c])
        return y * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "epsilon": self.epsilon}
