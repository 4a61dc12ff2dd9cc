"""Deformable DETR's own layers: multi-scale deformable attention, the level positions, the
encoder's reference points, the learned queries, the box refinement of the heads, and the
two-stage model's encoder proposals.

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
    """[queries (B, Q, D) (positions added), values (B, sum H*W, D), reference points (B, Q, 2)
    or boxes (B, Q, 4)] -> (B, Q, D): each head samples ``num_points`` points per level around
    the reference point (offsets in pixels of that level; for a box, in units of half its size
    over ``num_points``), weighted by a softmax over all levels' points."""

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
        # the reference point (or box) of each query, once per sampling point: (B, 1, Q*P, 2|4)
        coords = int(reference.shape[-1])
        ref = tf.reshape(tf.tile(reference[:, :, None, :], [1, 1, points, 1]),
                         [-1, 1, q * points, coords])
        if coords == 4:  # a box: offsets scale with its size, 0.5 x size / points per unit
            ref, size = ref[..., :2], ref[..., 2:] * (0.5 / points)
        out, start = 0.0, 0
        for level, (h, w) in enumerate(self.shapes):
            step = tf.reshape(offsets[..., level * points * 2 : (level + 1) * points * 2],
                              [-1, heads, q * points, 2])
            loc = ref + (step * size if coords == 4 else step / tf.constant([w, h], query.dtype))
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


# A proposal outside (0.01, 0.99) gets this logit where the reference sets +inf: its sigmoid is
# exactly 1.0 in float32 as inf's is, and it stays finite for the converter.
OUTSIDE_LOGIT = 20.0


def encoder_proposals(shapes):
    """The two-stage model's fixed proposal of every token, in token order: inverse-sigmoid
    (cx, cy, w, h) of its pixel centre with side 0.05 x 2^level (N, 4), and whether all four
    lie in (0.01, 0.99) (N,) -- tokens outside are masked, as in the reference."""
    centres = encoder_reference_points(shapes)
    sides = np.concatenate([np.full((h * w, 2), 0.05 * 2.0 ** k) for k, (h, w) in enumerate(shapes)])
    boxes = np.concatenate([centres, sides], -1)
    valid = np.all((boxes > 0.01) & (boxes < 0.99), -1)
    logits = np.where(valid[:, None], np.log(boxes / (1 - boxes)), OUTSIDE_LOGIT)
    return logits.astype(np.float32), valid


@keras.saving.register_keras_serializable(package="edgezoo")
class MaskProposals(keras.layers.Layer):
    """(B, N, D) encoder output -> the same with the tokens whose proposal is masked set to 0."""

    def __init__(self, shapes, **kwargs):
        super().__init__(**kwargs)
        self.shapes = _shapes(shapes)

    def call(self, x):
        valid = encoder_proposals(self.shapes)[1].astype(np.float32)
        return x * tf.constant(valid[None, :, None], x.dtype)

    def get_config(self):
        return {**super().get_config(), "shapes": self.shapes}


def proposal_coords(delta, shapes):
    """Box logits (B, N, 4) of every token's proposal: ``delta`` + its fixed proposal, and
    ``OUTSIDE_LOGIT`` where the proposal is masked."""
    fixed, valid = encoder_proposals(shapes)
    return tf.where(tf.constant(valid[None, :, None]), delta + tf.constant(fixed[None]),
                    tf.constant(OUTSIDE_LOGIT, delta.dtype))


@keras.saving.register_keras_serializable(package="edgezoo")
class ProposalBoxes(keras.layers.Layer):
    """(B, N, 4) proposal box deltas -> (B, N, 4) boxes (sigmoid) of every encoder token, for
    the two-stage model's encoder loss (training only: the deployed graph keeps the top k)."""

    def __init__(self, shapes, **kwargs):
        super().__init__(**kwargs)
        self.shapes = _shapes(shapes)

    def call(self, delta):
        return tf.sigmoid(proposal_coords(delta, self.shapes))

    def get_config(self):
        return {**super().get_config(), "shapes": self.shapes}


@keras.saving.register_keras_serializable(package="edgezoo")
class SelectProposals(keras.layers.Layer):
    """[proposal class logits (B, N, C), box deltas (B, N, 4)] -> the ``k`` proposals scoring
    highest on the first class, as box logits (B, k, 4): delta + the token's fixed proposal,
    ``OUTSIDE_LOGIT`` where it is masked; no gradient flows back through them (as the
    reference's ``detach``). Top-k is TOPK_V2, which TFLite Micro has no kernel for."""

    def __init__(self, shapes, k, **kwargs):
        super().__init__(**kwargs)
        self.shapes, self.k = _shapes(shapes), int(k)

    def call(self, inputs):
        logits, delta = inputs
        coords = proposal_coords(delta, self.shapes)
        top = tf.math.top_k(logits[..., 0], self.k).indices
        return tf.stop_gradient(tf.gather(coords, top, batch_dims=1))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0][0], self.k, 4])

    def get_config(self):
        return {**super().get_config(), "shapes": self.shapes, "k": self.k}


@keras.saving.register_keras_serializable(package="edgezoo")
class ProposalPositions(keras.layers.Layer):
    """(B, k, 4) box logits -> (B, k, 2 dim) sine embeddings, ``dim // 2`` per coordinate p of
    sigmoid(box) x 2 pi: [sin(p / t_0), cos(p / t_0), sin(p / t_1), cos(p / t_1), ...] with
    t_i = temperature^(2 i / (dim // 2)) (``dim``: d_model)."""

    def __init__(self, dim, temperature=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.temperature = int(dim), float(temperature)

    def call(self, boxes):
        feats = self.dim // 2
        t = self.temperature ** (2 * (np.arange(feats) // 2) / feats)
        p = tf.sigmoid(boxes)[..., None] * (2 * np.pi) / tf.constant(t, boxes.dtype)  # (B, k, 4, F)
        even = tf.constant(np.arange(feats) % 2 == 0)
        pos = tf.where(even, tf.sin(p), tf.cos(p))
        return tf.reshape(pos, [-1, boxes.shape[1], 4 * feats])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([input_shape[0], input_shape[1], 4 * (self.dim // 2)])

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="edgezoo")
class SplitHalves(keras.layers.Layer):
    """(..., 2 D) -> [first D, last D] channels."""

    def call(self, x):
        d = x.shape[-1] // 2
        return [x[..., :d], x[..., d:]]

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape[:-1] + [input_shape[-1] // 2])
        return [shape, shape]


@keras.saving.register_keras_serializable(package="edgezoo")
class StopGradient(keras.layers.Layer):
    """Identity with no gradient: box refinement feeds each layer's boxes to the next as
    reference points without back-propagating through them (the reference's ``detach``)."""

    def call(self, x):
        return tf.stop_gradient(x)


@keras.saving.register_keras_serializable(package="edgezoo")
class KeepAuxiliary(keras.layers.Layer):
    """[x, aux_1, ...] -> x. The auxiliary class heads of the intermediate decoder layers (box
    refinement trains one per layer) feed nothing at inference; passing their outputs here keeps
    them in the functional graph, so their weights are the model's, checkpoints round-trip and
    training reads their outputs. The converter drops the unused branches."""

    def call(self, inputs):
        return inputs[0]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[0])
