"""Perceiver (Jaegle et al., arXiv 2103.03206) and Perceiver IO (Jaegle et al., arXiv 2107.14795).

The image is read as a byte array: its pixels flattened to M x C and concatenated
with Fourier position features of the pixel grid. A learned latent array (N x D)
cross-attends to the byte array and a latent Transformer (a stack of pre-norm
self-attention blocks) processes the latents; N stays small, so the cost is
linear in M.

* Perceiver: cross-attend and latent Transformer alternate ``num_cross_attends``
  times. As in the paper's ImageNet model, the latent Transformer's weights are
  shared by every repeat and all cross-attends after the first share one set of
  weights. Logits come from the latents averaged over N and a linear layer.
* Perceiver IO: one cross-attend, then the latent Transformer (one shared weight
  set) applied ``blocks_per_cross_attend`` times; a decoder cross-attends from
  output queries to the latents. ``decoder="classification"`` uses one learned
  query; ``decoder="dense"`` uses one query per output pixel, built from Fourier
  position features of the output grid, and returns (H, W, num_classes).

Blocks follow the authors' code (deepmind-research/perceiver): the cross-attend
is x = q + Attn(LN(q), LN(kv)), then x + MLP(LN(x)); its query/key width is the
byte array's width and its output width the latents'. Parameter counts equal the
papers' (44.9M, 48.4M) and, for Perceiver IO, HF transformers' exactly.

Shared weights are shared Keras layers called several times in one functional
graph; layers without weights (GELU, residual adds) are made per call, so every
GELU layer has one input for the TFLite Micro GELU rewrite.
"""
import tf_keras as keras

from edgezoo.base.errors import InputShapeError
from edgezoo.zoo.layers import MultiHeadSelfAttention, TokenSelect
from edgezoo.zoo.perceiver.layers import CrossAttention, FourierPositionEncoding, LatentArray

PAPER = "Perceiver: General Perception with Iterative Attention"
ARXIV = "2103.03206"
PAPER_IO = "Perceiver IO: A General Architecture for Structured Inputs & Outputs"
ARXIV_IO = "2107.14795"
DECODERS = ("classification", "dense")


def _check_grid(family, what, grid, num_bands, max_resolution):
    """Fourier bands run linearly from 1 to resolution / 2 (Nyquist): at most resolution // 2."""
    resolution = tuple(grid) if max_resolution is None else tuple(max_resolution)
    if len(resolution) != len(grid):
        raise InputShapeError(f"{family}: max_resolution {resolution} must give one size per "
                              f"spatial axis of the {what} {tuple(grid)}")
    if num_bands < 1:
        raise InputShapeError(f"{family}: num_bands must be at least 1, got {num_bands}")
    limit = int(min(resolution) // 2)
    if num_bands > limit:
        raise InputShapeError(
            f"{family}: {num_bands} Fourier bands are too many for the {what} resolution "
            f"{'x'.join(str(int(r)) for r in resolution)}: bands are spaced linearly from 1 to the "
            f"Nyquist frequency (resolution / 2), at most one per unit of frequency, so num_bands "
            f"must be at most resolution // 2 = {limit}"
        )


def _check_input_shape(family, input_shape, num_bands, max_resolution):
    if len(input_shape) != 3 or any(s is None or int(s) <= 0 for s in input_shape):
        raise InputShapeError(f"{family} takes a static (height, width, channels) image input "
                              f"shape, got {tuple(input_shape)}")
    h, w, c = (int(s) for s in input_shape)
    _check_grid(family, "input", (h, w), num_bands, max_resolution)
    return h, w, c


def _check_heads(family, width, heads, what):
    if width % heads:
        raise InputShapeError(f"{family}: {what} width {width} is not divisible by {heads} heads")


class _CrossAttend:
    """One cross-attend's weights (norms, attention, MLP); each call reuses them."""

    def __init__(self, name, *, num_heads, qk_channels, v_channels, widening, use_query_residual,
                 dropout, attention_dropout, epsilon, attention):
        self.name, self.widening = name, widening
        self.use_query_residual, self.dropout = use_query_residual, dropout
        self.norm_q = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_norm_q")
        self.norm_kv = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_norm_kv")
        self.attn = CrossAttention(num_heads, qk_channels=qk_channels, v_channels=v_channels,
                                   attention=attention, attention_dropout=attention_dropout,
                                   name=f"{name}_attn")
        self.norm_mlp = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_norm_mlp")
        self.fc1 = self.fc2 = None

    def __call__(self, q, kv, tag):
        width = q.shape[-1]
        if self.fc1 is None:
            self.fc1 = keras.layers.Dense(self.widening * width, name=f"{self.name}_mlp_fc1")
            self.fc2 = keras.layers.Dense(width, name=f"{self.name}_mlp_fc2")
        y = _drop(self.attn([self.norm_q(q), self.norm_kv(kv)]), self.dropout, f"{tag}_attn_drop")
        x = keras.layers.Add(name=f"{tag}_attn_add")([q, y]) if self.use_query_residual else y
        y = self.fc1(self.norm_mlp(x))
        y = keras.layers.Activation("gelu", name=f"{tag}_mlp_gelu")(y)
        y = _drop(self.fc2(y), self.dropout, f"{tag}_mlp_drop")
        return keras.layers.Add(name=f"{tag}_mlp_add")([x, y])


class _LatentBlock:
    """One self-attention block's weights: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, name, width, *, num_heads, widening, dropout, attention_dropout, epsilon,
                 attention):
        self.dropout = dropout
        self.norm1 = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_norm1")
        self.attn = MultiHeadSelfAttention(num_heads, attention=attention,
                                           attention_dropout=attention_dropout,
                                           name=f"{name}_attn")
        self.norm2 = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{name}_norm2")
        self.fc1 = keras.layers.Dense(widening * width, name=f"{name}_mlp_fc1")
        self.fc2 = keras.layers.Dense(width, name=f"{name}_mlp_fc2")

    def __call__(self, x, tag):
        y = _drop(self.attn(self.norm1(x)), self.dropout, f"{tag}_attn_drop")
        x = keras.layers.Add(name=f"{tag}_attn_add")([x, y])
        y = keras.layers.Activation("gelu", name=f"{tag}_mlp_gelu")(self.fc1(self.norm2(x)))
        y = _drop(self.fc2(y), self.dropout, f"{tag}_mlp_drop")
        return keras.layers.Add(name=f"{tag}_mlp_add")([x, y])


def _drop(x, rate, name):
    return keras.layers.Dropout(rate, name=name)(x) if rate else x


def encoder(inputs, *, family, num_latents, latent_dim, num_cross_attends, self_attends_per_block,
            blocks_per_cross_attend, share_cross_attend_weights, share_latent_weights,
            cross_attend_heads, self_attend_heads, cross_attend_widening, self_attend_widening,
            cross_qk_channels, cross_v_channels, num_bands, max_resolution, dropout,
            attention_dropout, layer_norm_epsilon, attention, cross_attend_query_residual=True):
    """Byte array -> latents (B, N, D) after every cross-attend and latent Transformer.

    Cross-attend ``i`` uses weight set ``min(i, 1)`` when ``share_cross_attend_weights``
    (else ``i``); every latent Transformer uses set 0 when ``share_latent_weights``.
    Weight sets are named ``cross{s}_*`` and ``latent{t}_block{j}_*``; the layers of
    each application are named ``cross_attend{i}_*`` and ``tower{k}_block{j}_*``.
    ``cross_attend_query_residual=False`` drops the latents' residual around the cross-attention
    (HF's ``use_query_residual`` option; the papers' models keep it).
    """
    if num_cross_attends < 1 or blocks_per_cross_attend < 1:
        raise ValueError(f"{family}: num_cross_attends and blocks_per_cross_attend must be >= 1")
    h, w, c = (int(s) for s in inputs.shape[1:])
    pixels = keras.layers.Reshape((h * w, c), name="pixels")(inputs)
    position = FourierPositionEncoding(num_bands, max_resolution=max_resolution,
                                       name="fourier_features")(inputs)
    byte_array = keras.layers.Concatenate(axis=-1, name="byte_array")([pixels, position])
    z = LatentArray(num_latents, latent_dim, name="latents")(inputs)
    common = dict(dropout=dropout, attention_dropout=attention_dropout,
                  epsilon=layer_norm_epsilon, attention=attention)
    qk = cross_qk_channels or byte_array.shape[-1]
    _check_heads(family, qk, cross_attend_heads, "cross-attention query/key")
    _check_heads(family, cross_v_channels or qk, cross_attend_heads, "cross-attention value")
    _check_heads(family, latent_dim, self_attend_heads, "latent")
    cross_sets, towers = [], []
    for i in range(num_cross_attends):
        s = min(i, 1) if share_cross_attend_weights else i
        if s == len(cross_sets):
            cross_sets.append(_CrossAttend(
                f"cross{s}", num_heads=cross_attend_heads, qk_channels=cross_qk_channels,
                v_channels=cross_v_channels, widening=cross_attend_widening,
                use_query_residual=cross_attend_query_residual, **common))
        z = cross_sets[s](z, byte_array, tag=f"cross_attend{i}")
        for r in range(blocks_per_cross_attend):
            k = i * blocks_per_cross_attend + r
            t = 0 if share_latent_weights else k
            if t == len(towers):
                towers.append([
                    _LatentBlock(f"latent{t}_block{j}", latent_dim, num_heads=self_attend_heads,
                                 widening=self_attend_widening, **common)
                    for j in range(self_attends_per_block)
                ])
            for j, block in enumerate(towers[t]):
                z = block(z, tag=f"tower{k}_block{j}")
    return z


def perceiver(
    *,
    input_shape=(224, 224, 3),
    num_classes=1000,
    num_latents=512,
    latent_dim=1024,
    num_cross_attends=8,
    self_attends_per_block=6,
    blocks_per_cross_attend=1,
    share_cross_attend_weights=True,
    share_latent_weights=True,
    cross_attend_heads=1,
    self_attend_heads=8,
    cross_attend_widening=1,
    self_attend_widening=1,
    cross_qk_channels=None,
    cross_v_channels=None,
    num_bands=64,
    max_resolution=None,
    dropout=0.0,
    attention_dropout=0.0,
    layer_norm_epsilon=1e-5,
    attention="dot_product",
    name="perceiver",
):
    """Build a Perceiver; ``num_classes=0`` returns the averaged latents (B, latent_dim).

    ``max_resolution`` (default: the input's height and width) sets the highest
    Fourier frequency, ``max_resolution / 2``.
    """
    family = "Perceiver"
    _check_input_shape(family, input_shape, num_bands, max_resolution)
    inputs = keras.Input(shape=tuple(int(s) for s in input_shape), name="image")
    z = encoder(
        inputs, family=family, num_latents=num_latents, latent_dim=latent_dim,
        num_cross_attends=num_cross_attends, self_attends_per_block=self_attends_per_block,
        blocks_per_cross_attend=blocks_per_cross_attend,
        share_cross_attend_weights=share_cross_attend_weights,
        share_latent_weights=share_latent_weights, cross_attend_heads=cross_attend_heads,
        self_attend_heads=self_attend_heads, cross_attend_widening=cross_attend_widening,
        self_attend_widening=self_attend_widening, cross_qk_channels=cross_qk_channels,
        cross_v_channels=cross_v_channels, num_bands=num_bands, max_resolution=max_resolution,
        dropout=dropout, attention_dropout=attention_dropout,
        layer_norm_epsilon=layer_norm_epsilon, attention=attention)
    x = keras.layers.GlobalAveragePooling1D(name="latent_mean")(z)
    if num_classes:
        x = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(inputs, x, name=name)


def perceiver_io(
    *,
    input_shape=(224, 224, 3),
    num_classes=1000,
    decoder="classification",
    num_latents=512,
    latent_dim=1024,
    num_cross_attends=1,
    self_attends_per_block=6,
    blocks_per_cross_attend=8,
    share_cross_attend_weights=True,
    share_latent_weights=True,
    cross_attend_heads=1,
    self_attend_heads=8,
    cross_attend_widening=1,
    self_attend_widening=1,
    cross_qk_channels=None,
    cross_v_channels=None,
    num_bands=64,
    max_resolution=None,
    decoder_heads=1,
    decoder_widening=1,
    query_dim=None,
    output_grid=None,
    output_num_bands=None,
    cross_attend_query_residual=True,
    dropout=0.0,
    attention_dropout=0.0,
    layer_norm_epsilon=1e-5,
    attention="dot_product",
    name="perceiver_io",
):
    """Build a Perceiver IO with a classification or a dense (per-pixel) query decoder.

    ``classification``: one learned query of width ``query_dim`` (default
    ``latent_dim``); output (B, num_classes), or the decoded query (B, query_dim)
    when ``num_classes=0``.
    ``dense``: one query per pixel of ``output_grid`` (default: the input's grid),
    its Fourier features with ``output_num_bands`` bands (default ``num_bands``);
    output (B, H, W, num_classes), or the decoded queries (B, H, W, channels) when
    ``num_classes=0``. The dense decoder has no query residual (its queries are
    positions, its outputs are not), as in the authors' BasicDecoder.
    ``cross_attend_query_residual=False``: no residual around the encoder's cross-attention
    (Hugging Face's ``use_query_residual``, for its checkpoints).
    """
    family = "Perceiver IO"
    if decoder not in DECODERS:
        raise ValueError(f"{family}: unknown decoder {decoder!r}; choose one of "
                         f"{', '.join(DECODERS)}")
    h, w, _ = _check_input_shape(family, input_shape, num_bands, max_resolution)
    inputs = keras.Input(shape=tuple(int(s) for s in input_shape), name="image")
    z = encoder(
        inputs, family=family, num_latents=num_latents, latent_dim=latent_dim,
        num_cross_attends=num_cross_attends, self_attends_per_block=self_attends_per_block,
        blocks_per_cross_attend=blocks_per_cross_attend,
        share_cross_attend_weights=share_cross_attend_weights,
        share_latent_weights=share_latent_weights, cross_attend_heads=cross_attend_heads,
        self_attend_heads=self_attend_heads, cross_attend_widening=cross_attend_widening,
        self_attend_widening=self_attend_widening, cross_qk_channels=cross_qk_channels,
        cross_v_channels=cross_v_channels, num_bands=num_bands, max_resolution=max_resolution,
        dropout=dropout, attention_dropout=attention_dropout,
        layer_norm_epsilon=layer_norm_epsilon, attention=attention,
        cross_attend_query_residual=cross_attend_query_residual)
    _check_heads(family, latent_dim, decoder_heads, "decoder query/key")
    block = dict(num_heads=decoder_heads, qk_channels=None, v_channels=None,
                 widening=decoder_widening, dropout=0.0, attention_dropout=0.0,
                 epsilon=layer_norm_epsilon, attention=attention)
    if decoder == "classification":
        query = LatentArray(1, query_dim or latent_dim, name="decoder_query")(inputs)
        x = _CrossAttend("decoder", use_query_residual=True, **block)(query, z, tag="decoder")
        x = TokenSelect(0, name="decoder_output")(x)
        if num_classes:
            x = keras.layers.Dense(num_classes, name="head")(x)
        return keras.Model(inputs, x, name=name)
    grid = (h, w) if output_grid is None else tuple(int(n) for n in output_grid)
    if len(grid) != 2 or min(grid) < 1:
        raise InputShapeError(f"{family}: output_grid must be (height, width), got {output_grid}")
    bands = output_num_bands or num_bands
    _check_grid(family, "output grid", grid, bands, None)
    query = FourierPositionEncoding(bands, index_dims=grid, name="decoder_query")(inputs)
    x = _CrossAttend("decoder", use_query_residual=False, **block)(query, z, tag="decoder")
    if num_classes:
        x = keras.layers.Dense(num_classes, name="head")(x)
    x = keras.layers.Reshape((*grid, x.shape[-1]), name="decoder_output")(x)
    return keras.Model(inputs, x, name=name)
