"""timm ViT checkpoints <-> the zoo ViT (``edgezoo.zoo.vit``).

The model is built from the checkpoint's own configuration (timm's architecture defaults with
``model_args`` on top), then filled through one mapping table. timm's ViT matches the zoo's
block for block: pre-norm blocks, exact (erf) GELU, LayerNorm eps 1e-6, class token with the
position table covering it, final norm, head on the class token (``global_pool="token"``,
no ``fc_norm``). timm's fused ``qkv`` Linear is split into the zoo's query/key/value.
"""
import numpy as np

from edgezoo.base.errors import ModelFileError
from edgezoo.zoo.checkpoints import (
    CONV2D,
    IDENTITY,
    LINEAR,
    Transform,
    assign,
    expand,
    export,
    register_checkpoint_family,
)
from edgezoo.zoo.vit.model import vit


def _split_qkv_weight(w):
    """timm qkv.weight [3D, D] (rows q, k, v; heads contiguous within each) -> 3 kernels [D, D]."""
    return tuple(part.T for part in np.split(w, 3, axis=0))


def _split_qkv_bias(b):
    return tuple(np.split(b, 3))


QKV_WEIGHT = Transform("qkv [3D, D] -> query, key, value kernels", lambda w: _split_qkv_weight(w),
                       lambda vs: np.concatenate([v.T for v in vs], axis=0))
QKV_BIAS = Transform("qkv bias [3D] -> query, key, value biases", lambda b: _split_qkv_bias(b),
                     lambda vs: np.concatenate(vs))

_QKV = ("block{i}_attn.{p}.kernel",)

# (timm tensor, zoo variables ("layer.attr"), transform); {i} is the block index.
TIMM_VIT_TABLE = [
    ("cls_token", ("cls_token.token",), IDENTITY),
    ("pos_embed", ("pos_embed.table",), IDENTITY),
    ("patch_embed.proj.weight", ("patch_embed.kernel",), CONV2D),
    ("patch_embed.proj.bias", ("patch_embed.bias",), IDENTITY),
    ("blocks.{i}.norm1.weight", ("block{i}_norm1.gamma",), IDENTITY),
    ("blocks.{i}.norm1.bias", ("block{i}_norm1.beta",), IDENTITY),
    ("blocks.{i}.attn.qkv.weight", ("block{i}_attn.query.kernel", "block{i}_attn.key.kernel",
                                    "block{i}_attn.value.kernel"), QKV_WEIGHT),
    ("blocks.{i}.attn.qkv.bias", ("block{i}_attn.query.bias", "block{i}_attn.key.bias",
                                  "block{i}_attn.value.bias"), QKV_BIAS),
    ("blocks.{i}.attn.proj.weight", ("block{i}_attn.out.kernel",), LINEAR),
    ("blocks.{i}.attn.proj.bias", ("block{i}_attn.out.bias",), IDENTITY),
    ("blocks.{i}.norm2.weight", ("block{i}_norm2.gamma",), IDENTITY),
    ("blocks.{i}.norm2.bias", ("block{i}_norm2.beta",), IDENTITY),
    ("blocks.{i}.mlp.fc1.weight", ("block{i}_mlp_fc1.kernel",), LINEAR),
    ("blocks.{i}.mlp.fc1.bias", ("block{i}_mlp_fc1.bias",), IDENTITY),
    ("blocks.{i}.mlp.fc2.weight", ("block{i}_mlp_fc2.kernel",), LINEAR),
    ("blocks.{i}.mlp.fc2.bias", ("block{i}_mlp_fc2.bias",), IDENTITY),
    ("norm.weight", ("norm.gamma",), IDENTITY),
    ("norm.bias", ("norm.beta",), IDENTITY),
]
HEAD_TABLE = [
    ("head.weight", ("head.kernel",), LINEAR),
    ("head.bias", ("head.bias",), IDENTITY),
]

# timm architecture defaults (timm/models/vision_transformer.py): patch, width, depth, heads.
TIMM_VIT_ARCHITECTURES = {
    "vit_tiny_patch16_224": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16_224": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_small_patch32_224": dict(patch_size=32, embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16_224": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_base_patch32_224": dict(patch_size=32, embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16_224": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    "vit_large_patch32_224": dict(patch_size=32, embed_dim=1024, depth=24, num_heads=16),
    "vit_huge_patch14_224": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
}
_TIMM_DEFAULTS = dict(img_size=224, in_chans=3, mlp_ratio=4.0, qkv_bias=True, class_token=True,
                      global_pool="token", num_classes=1000, drop_rate=0.0, attn_drop_rate=0.0,
                      drop_path_rate=0.0)
# timm keywords the zoo ViT has no counterpart for, and the only value it can take.
_TIMM_FIXED = dict(qkv_bias=True, class_token=True, global_pool="token", no_embed_class=False,
                   pre_norm=False, fc_norm=None, init_values=None, reg_tokens=0, qk_norm=False,
                   dynamic_img_size=False, pos_embed="learn", act_layer=None, norm_layer=None,
                   weight_init="", fix_init=False)
_TIMM_MAPPED = {"img_size", "in_chans", "patch_size", "embed_dim", "depth", "num_heads",
                "mlp_ratio", "num_classes", "drop_rate", "attn_drop_rate", "drop_path_rate",
                "pos_drop_rate", "proj_drop_rate"}
LAYER_NORM_EPSILON = 1e-6  # timm ViT: partial(nn.LayerNorm, eps=1e-6)


def vit_kwargs_from_timm(config):
    """zoo ``vit(...)`` keywords from a timm config.json (architecture + model_args)."""
    arch = config["architecture"]
    args = {**_TIMM_DEFAULTS, **TIMM_VIT_ARCHITECTURES[arch], **config.get("model_args", {})}
    if "num_classes" not in config.get("model_args", {}) and "num_classes" in config:
        args["num_classes"] = config["num_classes"]
    for key, value in args.items():
        if key in _TIMM_FIXED and value != _TIMM_FIXED[key]:
            raise ModelFileError(f"timm {arch} with {key}={value!r} is not supported by the zoo "
                                 f"ViT (it has {key}={_TIMM_FIXED[key]!r})")
        if key not in _TIMM_FIXED and key not in _TIMM_MAPPED:
            known = ", ".join(sorted(_TIMM_MAPPED | set(_TIMM_FIXED)))
            raise ModelFileError(f"timm model_args {key}={value!r} is not supported by the zoo "
                                 f"ViT; known: {known}")
    size = args["img_size"]
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    dropout = args.get("proj_drop_rate", args["drop_rate"])
    return dict(
        input_shape=(h, w, int(args["in_chans"])), num_classes=int(args["num_classes"]),
        patch_size=int(args["patch_size"]), hidden_dim=int(args["embed_dim"]),
        depth=int(args["depth"]), num_heads=int(args["num_heads"]),
        mlp_dim=int(args["embed_dim"] * args["mlp_ratio"]), dropout=float(dropout),
        attention_dropout=float(args["attn_drop_rate"]),
        drop_path_rate=float(args["drop_path_rate"]), layer_norm_epsilon=LAYER_NORM_EPSILON,
    )


def vit_plan(model, depth, with_head=True):
    """The checkpoint plan of a zoo ViT: one Step per timm tensor."""
    table = TIMM_VIT_TABLE + (HEAD_TABLE if with_head else [])
    return expand(table, model, i=range(depth))


def load_timm_vit(config, tensors, **overrides):
    """A zoo ViT built from a timm ViT config and filled with its tensors."""
    kwargs = vit_kwargs_from_timm(config)
    own_classes = kwargs["num_classes"]
    kwargs.update(overrides)
    kwargs.setdefault("name", config["architecture"])
    model = vit(**kwargs)
    same_head = kwargs["num_classes"] == own_classes and own_classes > 0
    skippable = () if same_head else ("head.*",)
    fresh = ("head",) if kwargs["num_classes"] and not same_head else ()
    assign(tensors, vit_plan(model, kwargs["depth"], with_head=same_head), skippable=skippable,
           model=model, fresh=fresh)
    return model


def _zoo_vit_config(model):
    """timm keywords of a zoo ViT model (None if ``model`` is not one)."""
    names = {layer.name for layer in model.layers}
    if not {"patch_embed", "cls_token", "pos_embed", "block0_attn", "norm"} <= names:
        return None
    if "pre_logits" in names:
        raise ModelFileError("timm's ViT has no pre_logits layer: a zoo ViT built with "
                             "representation_size cannot be written as a timm checkpoint")
    depth = sum(1 for n in names if n.startswith("block") and n.endswith("_attn"))
    patch = model.get_layer("patch_embed")
    h, w, c = model.input_shape[1:]
    width = patch.filters
    return dict(
        img_size=h if h == w else [h, w], in_chans=c, patch_size=patch.kernel_size[0],
        embed_dim=width, depth=depth, num_heads=model.get_layer("block0_attn").num_heads,
        mlp_ratio=model.get_layer("block0_mlp_fc1").units / width,
        num_classes=model.get_layer("head").units if "head" in names else 0,
    )


def export_timm_vit(model):
    """``(config, tensors)`` of a zoo ViT in timm's names and layout, or None if not a ViT."""
    args = _zoo_vit_config(model)
    if args is None:
        return None
    shape_keys = ("patch_size", "embed_dim", "depth", "num_heads")
    arch = next((a for a, d in TIMM_VIT_ARCHITECTURES.items()
                 if all(d[k] == args[k] for k in shape_keys)), "vit_tiny_patch16_224")
    defaults = {**_TIMM_DEFAULTS, **TIMM_VIT_ARCHITECTURES[arch]}
    model_args = {k: v for k, v in args.items() if defaults.get(k) != v}
    tensors = export(vit_plan(model, args["depth"], with_head=args["num_classes"] > 0))
    config = {"architecture": arch, "model_args": model_args, "num_classes": args["num_classes"]}
    return config, tensors


register_checkpoint_family("timm", TIMM_VIT_ARCHITECTURES, load_timm_vit, export_timm_vit,
                           family="vit")
