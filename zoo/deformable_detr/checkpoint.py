"""Hugging Face ``DeformableDetrForObjectDetection`` checkpoints -> the zoo Deformable DETR.

The backbone's names are DETR's (timm or HF ResNet, ``zoo.detr.checkpoint``); the transformer
is read in transformers 4 and 5 names. HF stores the class and box heads once per decoder layer,
all one module without box refinement: the copies must be equal and fill one head.
"""
from edgezoo.base.errors import ModelFileError
from edgezoo.zoo.checkpoints import CONV2D, IDENTITY, assign, expand, register_checkpoint_family
from edgezoo.zoo.detr.checkpoint import (BUFFERS, HF_BLOCK, HF_DOWN, HF_STEM, TIMM_BLOCK, TIMM_DOWN,
                                         TIMM_STEM, _attention, _blocks, _dense, _norm, _version,
                                         detr_kwargs_from_hf)

ARCHITECTURE = "DeformableDetrForObjectDetection"
_DEFORMABLE = ("sampling_offsets", "attention_weights", "value_proj", "output_proj")


def _deformable(tensor, layer):
    return [row for part in _DEFORMABLE for row in _dense(f"{tensor}.{part}", f"{layer}.{part}")]


def transformer_table(version, levels, head):
    """Input projections, encoder, decoder and (decoder layer ``head``'s copy of) the heads."""
    out, fc = ("out_proj", "") if version == 4 else ("o_proj", "mlp.")
    enc, dec = "model.encoder.layers.{i}", "model.decoder.layers.{j}"
    rows = []
    for k in range(levels):
        rows += [(f"model.input_proj.{k}.0.weight", (f"input_proj{k}_conv.kernel",), CONV2D),
                 (f"model.input_proj.{k}.0.bias", (f"input_proj{k}_conv.bias",), IDENTITY),
                 *_norm(f"model.input_proj.{k}.1", f"input_proj{k}_norm")]
    return rows + [
        ("model.level_embed", ("positions.level_embed",), IDENTITY),
        ("model.query_position_embeddings.weight", ("query_embeddings.embeddings",), IDENTITY),
        *_dense("model.reference_points", "reference_points"),
        *_deformable(f"{enc}.self_attn", "encoder{i}_attn"),
        *_norm(f"{enc}.self_attn_layer_norm", "encoder{i}_attn_norm"),
        *_dense(f"{enc}.{fc}fc1", "encoder{i}_ffn_fc1"), *_dense(f"{enc}.{fc}fc2", "encoder{i}_ffn_fc2"),
        *_norm(f"{enc}.final_layer_norm", "encoder{i}_ffn_norm"),
        *_attention(f"{dec}.self_attn", "decoder{j}_self_attn", out),
        *_norm(f"{dec}.self_attn_layer_norm", "decoder{j}_self_attn_norm"),
        *_deformable(f"{dec}.encoder_attn", "decoder{j}_cross_attn"),
        *_norm(f"{dec}.encoder_attn_layer_norm", "decoder{j}_cross_attn_norm"),
        *_dense(f"{dec}.{fc}fc1", "decoder{j}_ffn_fc1"), *_dense(f"{dec}.{fc}fc2", "decoder{j}_ffn_fc2"),
        *_norm(f"{dec}.final_layer_norm", "decoder{j}_ffn_norm"),
        *_dense(f"class_embed.{head}", "logits"),
        *_dense(f"bbox_embed.{head}.layers.0", "box_mlp0"),
        *_dense(f"bbox_embed.{head}.layers.1", "box_mlp1"),
        *_dense(f"bbox_embed.{head}.layers.2", "box_delta"),
    ]


def _tied_heads(decoder_layers, head):
    tied = {}
    for k in range(decoder_layers):
        if k == head:
            continue
        for part in ("class_embed.{k}.weight", "class_embed.{k}.bias",
                     *(f"bbox_embed.{{k}}.layers.{n}.{w}" for n in range(3) for w in ("weight", "bias"))):
            tied[part.format(k=k)] = part.format(k=head)
    return tied


def deformable_plan(model, timm_backbone, version, config):
    stem, block, down = (TIMM_STEM, TIMM_BLOCK, TIMM_DOWN) if timm_backbone else \
        (HF_STEM, HF_BLOCK, HF_DOWN)
    plan = expand(stem, model)
    for s, b, has_down in _blocks(model):
        for table in (block, down) if has_down else (block,):
            where = dict(s=s, b=b, t=s - 1)
            plan += expand([(p.format(**where), tuple(v.format(**where) for v in vs), f)
                            for p, vs, f in table], model)
    table = transformer_table(version, config["num_feature_levels"], 0)
    return plan + expand(table, model, i=range(config["encoder_layers"]),
                         j=range(config["decoder_layers"]))


def load_hf_deformable_detr(config, tensors, **overrides):
    """A zoo Deformable DETR from an HF DeformableDetrConfig and its tensors (``input_shape``:
    the image size the model is built for)."""
    from edgezoo.zoo.deformable_detr.model import deformable_detr

    for option in ("with_box_refine", "two_stage"):
        if config.get(option):
            raise ModelFileError(f"Deformable DETR with {option}=true is not built yet; only the "
                                 "single-stage model without box refinement loads")
    kwargs, timm_backbone = detr_kwargs_from_hf({**config, "position_embedding_type": "sine"})
    kwargs.pop("hf_aux_norm")
    kwargs.update(num_levels=config["num_feature_levels"], num_points=config["encoder_n_points"])
    if config["decoder_n_points"] != config["encoder_n_points"]:
        raise ModelFileError("the zoo Deformable DETR samples as many points in encoder and decoder")
    for key, have in (("num_queries", kwargs["num_queries"]), ("num_levels", kwargs["num_levels"])):
        wanted = overrides.get(key, have)
        if wanted != have:
            raise ModelFileError(f"the checkpoint has {have} {key.replace('num_', '')}; {wanted} "
                                 "were asked for")
    kwargs.update(overrides)
    model = deformable_detr(**kwargs)
    assign(tensors, deformable_plan(model, timm_backbone, _version(tensors), config),
           skippable=BUFFERS, model=model, tied=_tied_heads(config["decoder_layers"], 0))
    return model


register_checkpoint_family("huggingface", [ARCHITECTURE], load_hf_deformable_detr)
