"""Hugging Face ``PerceiverForImageClassificationFourier`` checkpoints <-> the zoo Perceiver IO.

The model is built from the checkpoint's own config.json, then filled through one mapping table.
HF's model matches the zoo's ``perceiver_io`` (classification decoder) layer for layer:

* input: pixels flattened to (H * W, 3) and concatenated, pixels first, with Fourier features of
  the grid (positions ``linspace(-1, 1)`` first, then sines, then cosines; bands
  ``linspace(1, max_resolution / 2)``). HF's class fixes them: 64 bands, max resolution 224 x 224,
  ``concat_pos``, not ``sine_only`` (whatever the image size), so ``d_model`` is 3 + 258 = 261.
* encoder: one cross-attend (LN on the latents and on the byte array, q/k/v Linear with
  ``qk_channels`` = the byte array's width for ``cross_attention_shape_for_attention="kv"``,
  scale 1/sqrt(channels per head), output Linear to ``d_latents``, the query residual when
  ``use_query_residual``, then x + MLP(LN(x))), then ``num_self_attends_per_block`` pre-norm
  self-attention layers applied ``num_blocks`` times with one shared weight set.
* decoder: one trainable (1, d_latents) query cross-attends to the latents (query residual on,
  one head, widening 1), then ``final_layer`` to ``num_labels``.

Every LayerNorm is ``nn.LayerNorm(dim)``, eps 1e-5; HF ignores ``layer_norm_eps`` here. The MLP
activation is ``hidden_act`` ("gelu": exact, erf). Tensor names are the same in transformers 4
and 5 (``perceiver.…``), so one table reads both.
"""
from edgezoo.base.errors import ModelFileError
from edgezoo.zoo.checkpoints import (
    IDENTITY,
    LINEAR,
    assign,
    expand,
    export,
    register_checkpoint_family,
)
from edgezoo.zoo.perceiver.layers import fourier_channels

ARCHITECTURE = "PerceiverForImageClassificationFourier"
# Fixed by HF's PerceiverForImageClassificationFourier (fourier_position_encoding_kwargs).
HF_NUM_BANDS = 64
HF_MAX_RESOLUTION = (224, 224)
HF_IN_CHANNELS = 3
HF_LAYER_NORM_EPSILON = 1e-5  # torch nn.LayerNorm default; HF's Perceiver never passes eps

_ENC = "perceiver.encoder"
_DEC = "perceiver.decoder.decoder"


def _layer_rows(prefix, zoo, *, cross, attn):
    """Rows of one HF ``PerceiverLayer`` (attention + MLP) onto a zoo cross-attend or block."""
    norm_q, norm_mlp = (f"{zoo}_norm_q", f"{zoo}_norm_mlp") if cross else (f"{zoo}_norm1",
                                                                           f"{zoo}_norm2")
    rows = [
        (f"{prefix}.attention.self.layernorm1.weight", (f"{norm_q}.gamma",), IDENTITY),
        (f"{prefix}.attention.self.layernorm1.bias", (f"{norm_q}.beta",), IDENTITY),
    ]
    if cross:
        rows += [
            (f"{prefix}.attention.self.layernorm2.weight", (f"{zoo}_norm_kv.gamma",), IDENTITY),
            (f"{prefix}.attention.self.layernorm2.bias", (f"{zoo}_norm_kv.beta",), IDENTITY),
        ]
    for hf, ours in (("self.query", "query"), ("self.key", "key"), ("self.value", "value"),
                     ("output.dense", "out")):
        rows += [
            (f"{prefix}.attention.{hf}.weight", (f"{attn}.{ours}.kernel",), LINEAR),
            (f"{prefix}.attention.{hf}.bias", (f"{attn}.{ours}.bias",), IDENTITY),
        ]
    rows += [
        (f"{prefix}.layernorm.weight", (f"{norm_mlp}.gamma",), IDENTITY),
        (f"{prefix}.layernorm.bias", (f"{norm_mlp}.beta",), IDENTITY),
        (f"{prefix}.mlp.dense1.weight", (f"{zoo}_mlp_fc1.kernel",), LINEAR),
        (f"{prefix}.mlp.dense1.bias", (f"{zoo}_mlp_fc1.bias",), IDENTITY),
        (f"{prefix}.mlp.dense2.weight", (f"{zoo}_mlp_fc2.kernel",), LINEAR),
        (f"{prefix}.mlp.dense2.bias", (f"{zoo}_mlp_fc2.bias",), IDENTITY),
    ]
    return rows


# (HF tensor, zoo variables ("layer.attr"), transform); {j} is the self-attend index.
HF_PERCEIVER_TABLE = [
    ("perceiver.embeddings.latents", ("latents.latents",), IDENTITY),
    *_layer_rows(f"{_ENC}.cross_attention", "cross0", cross=True, attn="cross0_attn"),
    *_layer_rows(f"{_ENC}.self_attends.{{j}}", "latent0_block{j}", cross=False,
                 attn="latent0_block{j}_attn"),
    ("perceiver.decoder.decoder.output_position_encodings.position_embeddings",
     ("decoder_query.latents",), IDENTITY),
    *_layer_rows(f"{_DEC}.decoding_cross_attention", "decoder", cross=True,
                 attn="decoder_attn"),
]
HEAD_TABLE = [
    (f"{_DEC}.final_layer.weight", ("head.kernel",), LINEAR),
    (f"{_DEC}.final_layer.bias", ("head.bias",), IDENTITY),
]


def _num_labels(config):
    if "num_labels" in config:
        return int(config["num_labels"])
    if config.get("id2label"):
        return len(config["id2label"])
    return 2  # PretrainedConfig's default


def _unsupported(key, value, why):
    return ModelFileError(f"Hugging Face {ARCHITECTURE} with {key}={value!r} cannot be built by "
                          f"the zoo Perceiver IO: {why}")


def perceiver_io_kwargs_from_hf(config):
    """zoo ``perceiver_io(...)`` keywords from an HF PerceiverConfig (config.json dict).

    Options the zoo cannot build are errors saying which and why (checked before anything
    is built).
    """
    get = config.get
    for key in ("qk_channels", "v_channels"):
        if get(key) is not None:
            raise _unsupported(key, get(key), "HF applies it to the latent self-attention too, and "
                               "the zoo's latent self-attention projects q/k/v to d_latents")
    if get("hidden_act", "gelu") != "gelu":
        raise _unsupported("hidden_act", get("hidden_act"), "the zoo's MLPs use exact (erf) GELU "
                           "only")
    shape_for_attention = get("cross_attention_shape_for_attention", "kv")
    if shape_for_attention not in ("kv", "q"):
        raise _unsupported("cross_attention_shape_for_attention", shape_for_attention,
                           "HF itself knows only 'kv' and 'q'")
    d_latents = int(get("d_latents", 1280))
    byte_width = HF_IN_CHANNELS + fourier_channels(2, HF_NUM_BANDS)
    if int(get("d_model", 768)) != byte_width:  # 768: PerceiverConfig's default
        raise _unsupported("d_model", get("d_model"), f"the Fourier image classifier's byte array "
                           f"is {HF_IN_CHANNELS} pixel channels + {byte_width - HF_IN_CHANNELS} "
                           f"Fourier features ({HF_NUM_BANDS} bands, concat_pos) = {byte_width} "
                           f"wide, and HF's cross-attention keys take d_model channels")
    size = get("image_size", 56)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return dict(
        input_shape=(int(h), int(w), HF_IN_CHANNELS), num_classes=_num_labels(config),
        decoder="classification", num_latents=int(get("num_latents", 256)), latent_dim=d_latents,
        num_cross_attends=1, self_attends_per_block=int(get("num_self_attends_per_block", 26)),
        blocks_per_cross_attend=int(get("num_blocks", 1)), share_cross_attend_weights=True,
        share_latent_weights=True, cross_attend_heads=int(get("num_cross_attention_heads", 8)),
        self_attend_heads=int(get("num_self_attention_heads", 8)),
        cross_attend_widening=int(get("cross_attention_widening_factor", 1)),
        self_attend_widening=int(get("self_attention_widening_factor", 1)),
        cross_qk_channels=d_latents if shape_for_attention == "q" else None,
        cross_v_channels=None, num_bands=HF_NUM_BANDS, max_resolution=HF_MAX_RESOLUTION,
        decoder_heads=1, decoder_widening=1, query_dim=d_latents,
        cross_attend_query_residual=bool(get("use_query_residual", True)),
        attention_dropout=float(get("attention_probs_dropout_prob", 0.1)),
        layer_norm_epsilon=HF_LAYER_NORM_EPSILON,
    )


def perceiver_plan(model, self_attends_per_block, with_head=True):
    """The checkpoint plan of a zoo Perceiver IO: one Step per HF tensor."""
    table = HF_PERCEIVER_TABLE + (HEAD_TABLE if with_head else [])
    return expand(table, model, j=range(self_attends_per_block))


def load_hf_perceiver(config, tensors, **overrides):
    """A zoo Perceiver IO built from an HF Perceiver config and filled with its tensors."""
    from edgezoo.zoo.perceiver.model import perceiver_io

    kwargs = perceiver_io_kwargs_from_hf(config)
    own_classes = kwargs["num_classes"]
    kwargs.update(overrides)
    kwargs.setdefault("name", "perceiver_io")
    model = perceiver_io(**kwargs)
    same_head = kwargs["num_classes"] == own_classes and own_classes > 0
    skippable = () if same_head else (f"{_DEC}.final_layer.*",)
    fresh = ("head",) if kwargs["num_classes"] and not same_head else ()
    assign(tensors, perceiver_plan(model, kwargs["self_attends_per_block"], with_head=same_head),
           skippable=skippable, model=model, fresh=fresh)
    return model


def _cannot_export(why):
    return ModelFileError(f"this zoo Perceiver cannot be written as a Hugging Face "
                          f"{ARCHITECTURE} checkpoint: {why}")


def _zoo_perceiver_io_config(model):
    """HF PerceiverConfig entries of a zoo Perceiver IO (None if ``model`` is not a Perceiver)."""
    from edgezoo.zoo.perceiver.layers import FourierPositionEncoding, LatentArray

    layers = {layer.name: layer for layer in model.layers}
    if not {"fourier_features", "latents", "cross0_attn"} <= set(layers):
        return None
    if "decoder_attn" not in layers:
        raise _cannot_export("HF has no Perceiver (v1) class; only the Perceiver IO with a "
                             "classification decoder maps")
    if not isinstance(layers.get("decoder_query"), LatentArray):
        raise _cannot_export("only the classification decoder (one learned query) maps")
    if "head" not in layers:
        raise _cannot_export("HF's decoder always ends in final_layer (num_classes must be > 0)")
    if any(n.startswith("cross_attend1_") or n.startswith("cross1_") for n in layers):
        raise _cannot_export("HF's encoder has exactly one cross-attend")
    if any(n.startswith("latent1_") for n in layers):
        raise _cannot_export("HF shares one self-attention weight set across blocks")
    h, w, c = model.input_shape[1:]
    fourier = layers["fourier_features"]
    if not isinstance(fourier, FourierPositionEncoding):
        raise _cannot_export("its input is not a Fourier-encoded byte array")
    resolution = tuple(fourier.max_resolution or (h, w))
    if (c, fourier.num_bands, resolution, fourier.concat_pos, fourier.sine_only) != (
            HF_IN_CHANNELS, HF_NUM_BANDS, tuple(float(r) for r in HF_MAX_RESOLUTION), True,
            False):
        raise _cannot_export(
            f"HF's Fourier image classifier fixes {HF_IN_CHANNELS} input channels, "
            f"{HF_NUM_BANDS} bands, max resolution {HF_MAX_RESOLUTION}, concat_pos; this model "
            f"has {c} channels, {fourier.num_bands} bands, max resolution {resolution}")
    if h != w:
        raise _cannot_export(f"HF's image_size is one number; the input is {h}x{w}")
    latents = layers["latents"]
    d = latents.latent_dim
    cross, decoder = layers["cross0_attn"], layers["decoder_attn"]
    eps = layers["cross0_norm_q"].epsilon
    if abs(eps - HF_LAYER_NORM_EPSILON) > 1e-12:
        raise _cannot_export(f"HF's LayerNorms use eps {HF_LAYER_NORM_EPSILON}, this model {eps}")
    byte_width = int(cross.key.kernel.shape[0])
    if cross.qk_channels in (None, byte_width) and cross.v_channels in (None, byte_width):
        shape_for_attention = "kv"
    elif cross.qk_channels == d and cross.v_channels in (None, d):
        shape_for_attention = "q"
    else:
        raise _cannot_export(f"cross-attention qk/v channels {cross.qk_channels}/"
                             f"{cross.v_channels}: HF takes the byte array's or the latents' width")
    if decoder.num_heads != 1 or layers["decoder_mlp_fc1"].units != d or \
            layers["decoder_query"].latent_dim != d:
        raise _cannot_export("HF's classification decoder has 1 head, widening 1 and a "
                             "d_latents-wide query")
    attention = {lay.attention for lay in model.layers if hasattr(lay, "attention")
                 and isinstance(getattr(lay, "attention"), str)}
    if attention - {"dot_product"}:
        raise _cannot_export(f"HF uses dot-product attention, this model {sorted(attention)}")
    per_block = sum(1 for n in layers if n.startswith("latent0_block") and n.endswith("_attn"))
    num_blocks = sum(1 for n in layers if n.startswith("tower") and n.endswith("_block0_attn_add"))
    block0 = layers["latent0_block0_attn"]
    labels = layers["head"].units
    return dict(
        architectures=[ARCHITECTURE], model_type="perceiver", num_latents=latents.num_latents,
        d_latents=d, d_model=byte_width, num_blocks=num_blocks,
        num_self_attends_per_block=per_block, num_self_attention_heads=block0.num_heads,
        num_cross_attention_heads=cross.num_heads, qk_channels=None, v_channels=None,
        cross_attention_shape_for_attention=shape_for_attention,
        self_attention_widening_factor=layers["latent0_block0_mlp_fc1"].units // d,
        cross_attention_widening_factor=layers["cross0_mlp_fc1"].units // d,
        hidden_act="gelu", attention_probs_dropout_prob=cross.attention_dropout,
        use_query_residual="cross_attend0_attn_add" in layers, layer_norm_eps=1e-12,
        image_size=int(h), id2label={str(i): f"LABEL_{i}" for i in range(labels)},
        label2id={f"LABEL_{i}": i for i in range(labels)},
    )


def export_hf_perceiver(model):
    """``(config, tensors)`` of a zoo Perceiver IO in HF's (transformers 4 and 5) names and
    layout, or None if ``model`` is not a Perceiver."""
    config = _zoo_perceiver_io_config(model)
    if config is None:
        return None
    plan = perceiver_plan(model, config["num_self_attends_per_block"])
    return config, export(plan)


register_checkpoint_family("huggingface", [ARCHITECTURE], load_hf_perceiver, export_hf_perceiver,
                           family="perceiver")
