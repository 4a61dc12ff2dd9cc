"""Hugging Face ``DeformableDetrForObjectDetection`` checkpoints -> the zoo Deformable DETR.

The backbone's names are DETR's (timm or HF ResNet, ``zoo.detr.checkpoint``); the transformer
is read in transformers 4 and 5 names. HF stores the class and box heads once per decoder layer
(``class_embed.{k}``, ``bbox_embed.{k}``): one shared module without box refinement, so the copies
must be equal and fill one head; one head per layer with box refinement, the box heads also as
``model.decoder.bbox_embed.{k}`` (and, two-stage, the class heads as ``model.decoder.class_embed.{k}``,
plus head L for the encoder proposals). Wherever one head is stored under several names, the
copies must be equal. transformers 5 writes each shared tensor once, under one of its names, and
ties a box-refinement model's class heads (only ``class_embed.0`` is written): both read.
``to_checkpoint`` writes transformers 4 names, every copy, as a transformers 4 ``state_dict``.
"""
from edgezoo.base.errors import ModelFileError
from edgezoo.zoo.checkpoints import (CONV2D, IDENTITY, assign, expand, export,
                                     register_checkpoint_family)
from edgezoo.zoo.detr.checkpoint import (BUFFERS, HF_BLOCK, HF_DOWN, HF_STEM, TIMM_BLOCK, TIMM_DOWN,
                                         TIMM_STEM, _attention, _blocks, _dense, _norm, _version,
                                         backbone_config, detr_kwargs_from_hf, hf_backbone_names)

ARCHITECTURE = "DeformableDetrForObjectDetection"
_DEFORMABLE = ("sampling_offsets", "attention_weights", "value_proj", "output_proj")


def _deformable(tensor, layer):
    return [row for part in _DEFORMABLE for row in _dense(f"{tensor}.{part}", f"{layer}.{part}")]


def transformer_table(version, levels, two_stage):
    """Input projections, encoder, decoder and the query (or proposal) projections."""
    out, fc = ("out_proj", "") if version == 4 else ("o_proj", "mlp.")
    enc, dec = "model.encoder.layers.{i}", "model.decoder.layers.{j}"
    rows = []
    for k in range(levels):
        rows += [(f"model.input_proj.{k}.0.weight", (f"input_proj{k}_conv.kernel",), CONV2D),
                 (f"model.input_proj.{k}.0.bias", (f"input_proj{k}_conv.bias",), IDENTITY),
                 *_norm(f"model.input_proj.{k}.1", f"input_proj{k}_norm")]
    if two_stage:
        rows += [*_dense("model.enc_output", "enc_output"), *_norm("model.enc_output_norm", "enc_output_norm"),
                 *_dense("model.pos_trans", "pos_trans"), *_norm("model.pos_trans_norm", "pos_trans_norm")]
    else:
        rows += [("model.query_position_embeddings.weight", ("query_embeddings.embeddings",), IDENTITY),
                 *_dense("model.reference_points", "reference_points")]
    return rows + [
        ("model.level_embed", ("positions.level_embed",), IDENTITY),
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
    ]


_HEAD_PARTS = tuple(f"{part}.{{k}}{tail}.{w}" for part, tail in
                    (("class_embed", ""), *(("bbox_embed", f".layers.{n}") for n in range(3)))
                    for w in ("weight", "bias"))


def head_layers(k, decoder_layers, box_refine):
    """The zoo layers of HF head ``k``: [class, box MLP 0, 1, delta]."""
    if not box_refine or k == decoder_layers - 1:
        prefix = ""
    elif k == decoder_layers:
        prefix = "proposal_"
    else:
        prefix = f"decoder{k}_"
    return [f"{prefix}logits", f"{prefix}box_mlp0", f"{prefix}box_mlp1", f"{prefix}box_delta"]


def head_table(decoder_layers, box_refine, two_stage):
    """Rows ``class_embed.{k}`` / ``bbox_embed.{k}`` -> the zoo heads: one without box
    refinement, one per decoder layer with it, plus the proposal head for two-stage."""
    heads = (decoder_layers + two_stage) if box_refine else 1
    rows = []
    for k in range(heads):
        cls, mlp0, mlp1, delta = head_layers(k, decoder_layers, box_refine)
        rows += [*_dense(f"class_embed.{k}", cls), *_dense(f"bbox_embed.{k}.layers.0", mlp0),
                 *_dense(f"bbox_embed.{k}.layers.1", mlp1), *_dense(f"bbox_embed.{k}.layers.2", delta)]
    return rows


def head_copies(tensors, decoder_layers, box_refine, two_stage):
    """``(tensors, tied)``: every head the zoo model has under its ``class_embed.{k}`` /
    ``bbox_embed.{k}`` name (taken from whichever copy the checkpoint stores), and {copy:
    that name} for every other copy, which must be equal."""
    tensors, tied = dict(tensors), {}
    stored = decoder_layers + two_stage
    heads = stored if box_refine else 1
    for k in range(heads):
        for part in _HEAD_PARTS:
            name = part.format(k=k)
            copies = [p.format(k=j) for j in (range(stored) if not box_refine else (k,))
                      for p in (part, "model.decoder." + part)]
            present = [c for c in copies if c in tensors]
            if name not in tensors and present:
                tensors[name] = tensors[present[0]]
            elif name not in tensors and part.startswith("class") and not two_stage:
                first = part.format(k=0)  # transformers 5: tied class heads, the first written
                if first in tensors:
                    tensors[name] = tensors[first]
            tied.update({c: name for c in present if c != name})
    return tensors, tied


def deformable_plan(model, timm_backbone, version, config):
    stem, block, down = (TIMM_STEM, TIMM_BLOCK, TIMM_DOWN) if timm_backbone else \
        (HF_STEM, HF_BLOCK, HF_DOWN)
    plan = expand(stem, model)
    for s, b, has_down in _blocks(model):
        for table in (block, down) if has_down else (block,):
            where = dict(s=s, b=b, t=s - 1)
            plan += expand([(p.format(**where), tuple(v.format(**where) for v in vs), f)
                            for p, vs, f in table], model)
    refine, two_stage = bool(config.get("with_box_refine")), bool(config.get("two_stage"))
    table = transformer_table(version, config["num_feature_levels"], two_stage)
    plan += expand(table, model, i=range(config["encoder_layers"]), j=range(config["decoder_layers"]))
    return plan + expand(head_table(config["decoder_layers"], refine, two_stage), model)


def deformable_kwargs_from_hf(config):
    """Zoo ``deformable_detr`` keywords and whether the backbone is timm's."""
    if config.get("two_stage") and not config.get("with_box_refine"):
        raise ModelFileError("two_stage=true without with_box_refine is not a Deformable DETR "
                             "transformers builds")
    kwargs, timm_backbone = detr_kwargs_from_hf({**config, "position_embedding_type": "sine"})
    kwargs.pop("hf_aux_norm")
    kwargs.update(num_levels=config["num_feature_levels"], num_points=config["encoder_n_points"],
                  box_refine=bool(config.get("with_box_refine")),
                  two_stage=bool(config.get("two_stage")))
    if kwargs["two_stage"]:
        kwargs["num_queries"] = config.get("two_stage_num_proposals", 300)
    if config["decoder_n_points"] != config["encoder_n_points"]:
        raise ModelFileError("the zoo Deformable DETR samples as many points in encoder and decoder")
    return kwargs, timm_backbone


def load_hf_deformable_detr(config, tensors, **overrides):
    """A zoo Deformable DETR from an HF DeformableDetrConfig and its tensors (``input_shape``:
    the image size the model is built for)."""
    from edgezoo.zoo.deformable_detr.model import deformable_detr

    kwargs, timm_backbone = deformable_kwargs_from_hf(config)
    for key, have in (("num_queries", kwargs["num_queries"]), ("num_levels", kwargs["num_levels"])):
        wanted = overrides.get(key, have)
        if wanted != have:
            raise ModelFileError(f"the checkpoint has {have} {key.replace('num_', '')}; {wanted} "
                                 "were asked for")
    kwargs.update(overrides)
    model = deformable_detr(**kwargs)
    tensors, tied = head_copies(hf_backbone_names(tensors), config["decoder_layers"],
                                kwargs["box_refine"], kwargs["two_stage"])
    assign(tensors, deformable_plan(model, timm_backbone, _version(tensors), config),
           skippable=BUFFERS, model=model, tied=tied)
    return model


def export_hf_deformable_detr(model):
    """``(config, tensors)`` of a zoo Deformable DETR as a transformers 4 ``state_dict`` with the
    timm backbone (every head copy written), or None if ``model`` is not one."""
    layers = {layer.name for layer in model.layers}
    if not {"positions", "input_proj0_conv", "encoder_reference_points"} <= layers:
        return None
    two_stage = "proposals" in layers
    refine = two_stage or "decoder0_logits" in layers
    encoder = sum(1 for n in layers if n.startswith("encoder") and n.endswith("_attn_norm"))
    decoder = sum(1 for n in layers if n.startswith("decoder") and n.endswith("_self_attn_norm"))
    levels = sum(1 for n in layers if n.startswith("input_proj") and n.endswith("_conv"))
    attn = model.get_layer("encoder0_attn")
    queries = model.get_layer("proposals").k if two_stage else \
        model.get_layer("query_embeddings").num_queries
    labels = int(model.get_layer("logits").units)
    config = dict(
        architectures=[ARCHITECTURE], model_type="deformable_detr", **backbone_config(model),
        d_model=int(model.get_layer("input_proj0_conv").filters), encoder_layers=encoder,
        decoder_layers=decoder, encoder_attention_heads=attn.num_heads,
        decoder_attention_heads=attn.num_heads,
        encoder_ffn_dim=int(model.get_layer("encoder0_ffn_fc1").units),
        decoder_ffn_dim=int(model.get_layer("decoder0_ffn_fc1").units),
        encoder_n_points=attn.num_points, decoder_n_points=attn.num_points,
        num_feature_levels=levels, num_queries=queries, two_stage_num_proposals=queries,
        with_box_refine=refine, two_stage=two_stage, position_embedding_type="sine",
        dilation=False, activation_function="relu", auxiliary_loss=False,
        id2label={str(i): f"LABEL_{i}" for i in range(labels)},
        label2id={f"LABEL_{i}": i for i in range(labels)})
    if config["encoder_ffn_dim"] != config["decoder_ffn_dim"]:
        raise ModelFileError("encoder and decoder FFN widths differ; the zoo builds one width")
    tensors = export(deformable_plan(model, True, 4, config))
    stored = decoder + two_stage
    for k in range(stored):  # every copy a transformers 4 state_dict holds
        for part in _HEAD_PARTS:
            source = part.format(k=0 if not refine else k)
            tensors[part.format(k=k)] = tensors[source]
            if refine and (part.startswith("bbox") or two_stage):
                tensors["model.decoder." + part.format(k=k)] = tensors[source]
    return config, tensors


register_checkpoint_family("huggingface", [ARCHITECTURE], load_hf_deformable_detr,
                           export_hf_deformable_detr, family="deformable_detr")
