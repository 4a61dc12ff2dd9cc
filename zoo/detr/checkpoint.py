"""Hugging Face ``DetrForObjectDetection`` checkpoints <-> the zoo DETR (``edgezoo.zoo.detr``).

Both backbones HF builds read: the timm ResNet (``use_timm_backbone``, as
``facebook/detr-resnet-50``: ``model.backbone.conv_encoder.model.conv1``, ``layer{s}.{b}``) and
HF's own ResNet (``model.backbone.model.embedder``, ``encoder.stages.{s}.layers.{b}``), in
transformers 4 names (``out_proj``, ``fc1``) and 5 names (``o_proj``, ``mlp.fc1``). The model is
built from the checkpoint's configuration; every tensor fills exactly one variable (batch-norm
statistics included), and ``to_checkpoint`` writes transformers 4 names with the timm backbone.
"""
from edgezoo.base.errors import ModelFileError
from edgezoo.zoo.checkpoints import (CONV2D, IDENTITY, assign, batch_norm_rows, conv_rows, expand,
                                     export, layer_norm_rows, linear_rows,
                                     register_checkpoint_family)

ARCHITECTURE = "DetrForObjectDetection"
BUFFERS = ("*.num_batches_tracked",)


_bn, _conv, _dense, _norm = batch_norm_rows, conv_rows, linear_rows, layer_norm_rows


_Z = "backbone_s{s}_b{b}"
TIMM = "model.backbone.conv_encoder.model"
TIMM_STEM = [*_conv(f"{TIMM}.conv1", "backbone_stem_conv"), *_bn(f"{TIMM}.bn1", "backbone_stem_bn")]
TIMM_BLOCK = [row for j in (1, 2, 3) for row in
              _conv(f"{TIMM}.layer{{s}}.{{b}}.conv{j}", f"{_Z}_conv{j}")
              + _bn(f"{TIMM}.layer{{s}}.{{b}}.bn{j}", f"{_Z}_bn{j}")]
TIMM_DOWN = [*_conv(f"{TIMM}.layer{{s}}.{{b}}.downsample.0", f"{_Z}_down_conv"),
             *_bn(f"{TIMM}.layer{{s}}.{{b}}.downsample.1", f"{_Z}_down_bn")]
HFR = "model.backbone.model"
_HB = f"{HFR}.encoder.stages.{{t}}.layers.{{b}}"  # {t}: the 0-based stage
HF_STEM = [*_conv(f"{HFR}.embedder.embedder.convolution", "backbone_stem_conv"),
           *_bn(f"{HFR}.embedder.embedder.normalization", "backbone_stem_bn")]
HF_BLOCK = [row for j in (0, 1, 2) for row in
            _conv(f"{_HB}.layer.{j}.convolution", f"{_Z}_conv{j + 1}")
            + _bn(f"{_HB}.layer.{j}.normalization", f"{_Z}_bn{j + 1}")]
HF_DOWN = [*_conv(f"{_HB}.shortcut.convolution", f"{_Z}_down_conv"),
           *_bn(f"{_HB}.shortcut.normalization", f"{_Z}_down_bn")]


def _attention(tensor, layer, out):
    return [row for hf, zoo in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"),
                                (out, "out")) for row in _dense(f"{tensor}.{hf}", f"{layer}.{zoo}")]


def transformer_table(version):
    """The projection, encoder, decoder and heads in transformers ``version`` (4 or 5) names."""
    out, fc = ("out_proj", "") if version == 4 else ("o_proj", "mlp.")
    enc, dec = "model.encoder.layers.{i}", "model.decoder.layers.{j}"
    return [
        ("model.input_projection.weight", ("input_projection.kernel",), CONV2D),
        ("model.input_projection.bias", ("input_projection.bias",), IDENTITY),
        ("model.query_position_embeddings.weight", ("object_queries.embeddings",), IDENTITY),
        *_attention(f"{enc}.self_attn", "encoder{i}_attn", out),
        *_norm(f"{enc}.self_attn_layer_norm", "encoder{i}_attn_norm"),
        *_dense(f"{enc}.{fc}fc1", "encoder{i}_ffn_fc1"), *_dense(f"{enc}.{fc}fc2", "encoder{i}_ffn_fc2"),
        *_norm(f"{enc}.final_layer_norm", "encoder{i}_ffn_norm"),
        *_attention(f"{dec}.self_attn", "decoder{j}_self_attn", out),
        *_norm(f"{dec}.self_attn_layer_norm", "decoder{j}_self_attn_norm"),
        *_attention(f"{dec}.encoder_attn", "decoder{j}_cross_attn", out),
        *_norm(f"{dec}.encoder_attn_layer_norm", "decoder{j}_cross_attn_norm"),
        *_dense(f"{dec}.{fc}fc1", "decoder{j}_ffn_fc1"), *_dense(f"{dec}.{fc}fc2", "decoder{j}_ffn_fc2"),
        *_norm(f"{dec}.final_layer_norm", "decoder{j}_ffn_norm"),
        *_norm("model.decoder.layernorm", "decoder_norm"),
        *_dense("class_labels_classifier", "logits"),
        *_dense("bbox_predictor.layers.0", "box_mlp0"), *_dense("bbox_predictor.layers.1", "box_mlp1"),
        *_dense("bbox_predictor.layers.2", "boxes"),
    ]


def _blocks(model):
    """(stage (1-based), block, has a projection shortcut) of the model's backbone."""
    names = {layer.name for layer in model.layers}
    found, s = [], 1
    while f"backbone_s{s}_b0_conv1" in names:
        b = 0
        while f"backbone_s{s}_b{b}_conv1" in names:
            found.append((s, b, f"backbone_s{s}_b{b}_down_conv" in names))
            b += 1
        s += 1
    return found


def detr_plan(model, timm_backbone, version, encoder_layers, decoder_layers):
    """The checkpoint plan of a zoo DETR: one Step per HF tensor."""
    stem, block, down = (TIMM_STEM, TIMM_BLOCK, TIMM_DOWN) if timm_backbone else \
        (HF_STEM, HF_BLOCK, HF_DOWN)
    plan = expand(stem, model)
    for s, b, has_down in _blocks(model):
        for table in (block, down) if has_down else (block,):
            where = dict(s=s, b=b, t=s - 1)  # t: the 0-based stage of HF's own ResNet names
            plan += expand([(p.format(**where), tuple(v.format(**where) for v in vs), f)
                            for p, vs, f in table], model)
    return plan + expand(transformer_table(version), model, i=range(encoder_layers),
                         j=range(decoder_layers))


def _version(tensors):
    if any(".o_proj." in n for n in tensors):
        return 5
    if any(".out_proj." in n for n in tensors):
        return 4
    raise ModelFileError("not a DETR checkpoint: no attention projections (o_proj / out_proj) found")


def hf_backbone_names(tensors):
    """The tensors with transformers 5's saved names of an HF ResNet backbone
    (``model.backbone.conv_encoder.model.embedder`` / ``.encoder``, what ``save_pretrained``
    writes) under the module names (``model.backbone.model.…``); timm names stay."""
    old, new = "model.backbone.conv_encoder.model.", "model.backbone.model."
    return {(new + n[len(old):] if n.startswith(old) and
             n[len(old):].startswith(("embedder.", "encoder.")) else n): v
            for n, v in tensors.items()}


def backbone_config(model):
    """The config keys of a zoo ResNet backbone as transformers' timm backbone."""
    blocks = _blocks(model)
    depths = [sum(1 for s, _, _ in blocks if s == k) for k in sorted({s for s, _, _ in blocks})]
    widths = [int(model.get_layer(f"backbone_s{k}_b0_conv1").filters) for k in range(1, len(depths) + 1)]
    if int(model.get_layer("backbone_stem_conv").filters) != 64:
        raise ModelFileError("timm's ResNet stem is 64 wide; this model's is not")
    return dict(use_timm_backbone=True,
                backbone="resnet101" if depths == [3, 4, 23, 3] else "resnet50",
                backbone_kwargs={"channels": widths, "layers": depths,
                                 "out_indices": list(range(max(len(depths) - 2, 1), len(depths) + 1))})


def detr_kwargs_from_hf(config):
    """Zoo ``detr`` keywords from an HF DetrConfig (timm or HF ResNet backbone)."""
    if config.get("position_embedding_type", "sine") != "sine":
        raise ModelFileError(f"DETR with {config['position_embedding_type']!r} positions is not "
                             "supported; the zoo DETR has sine positions")
    if config.get("dilation"):
        raise ModelFileError("DETR-DC5 (dilation=true) is not supported: the zoo backbone has no "
                             "dilated last stage")
    kwargs = dict(num_classes=len(config.get("id2label") or {}) or 2, d_model=config["d_model"],
                  num_heads=config["encoder_attention_heads"], ffn_dim=config["encoder_ffn_dim"],
                  encoder_layers=config["encoder_layers"], decoder_layers=config["decoder_layers"],
                  num_queries=config["num_queries"], dropout=config.get("dropout", 0.1),
                  hf_aux_norm=bool(config.get("auxiliary_loss", False)))
    if (config["decoder_attention_heads"], config["decoder_ffn_dim"]) != (
            config["encoder_attention_heads"], config["encoder_ffn_dim"]):
        raise ModelFileError("the zoo DETR has the same heads and FFN width in encoder and decoder")
    if config.get("use_timm_backbone", True) and config.get("backbone"):
        name = config["backbone"]
        if name not in ("resnet50", "resnet101"):
            raise ModelFileError(f"timm backbone {name!r} is not supported; resnet50 or resnet101")
        from edgezoo.zoo.detr.backbone import RESNET_DEPTHS

        extra = config.get("backbone_kwargs") or {}
        kwargs.update(backbone_depths=tuple(extra.get("layers") or RESNET_DEPTHS[name]),
                      backbone_widths=tuple(extra.get("channels") or (64, 128, 256, 512)),
                      stem_width=64)  # timm's basic stem is 64 wide whatever stem_width says
        return kwargs, True
    backbone = config.get("backbone_config") or {}
    if backbone.get("model_type") != "resnet" or backbone.get("layer_type") != "bottleneck" \
            or backbone.get("downsample_in_bottleneck") or backbone.get("downsample_in_first_stage"):
        raise ModelFileError("only an HF ResNet bottleneck backbone (stride in the 3x3, first stage "
                             "unstrided) is supported")
    kwargs.update(backbone_depths=tuple(backbone["depths"]),
                  backbone_widths=tuple(h // 4 for h in backbone["hidden_sizes"]),
                  stem_width=backbone["embedding_size"])
    return kwargs, False


def load_hf_detr(config, tensors, **overrides):
    """A zoo DETR built from an HF DetrConfig and filled with its tensors. ``input_shape``
    (an override) is the image size the model is built for (default 800x800)."""
    from edgezoo.zoo.detr.model import detr

    kwargs, timm_backbone = detr_kwargs_from_hf(config)
    tensors = hf_backbone_names(tensors)
    wanted_queries = overrides.get("num_queries", kwargs["num_queries"])
    if wanted_queries != kwargs["num_queries"]:
        raise ModelFileError(f"the checkpoint has {kwargs['num_queries']} object queries; "
                             f"{wanted_queries} were asked for")
    kwargs.update(overrides)
    model = detr(**kwargs)
    assign(tensors, detr_plan(model, timm_backbone, _version(tensors), kwargs["encoder_layers"],
                              kwargs["decoder_layers"]), skippable=BUFFERS, model=model)
    return model


def export_hf_detr(model):
    """``(config, tensors)`` of a zoo DETR in transformers 4 names with the timm backbone, or
    None if ``model`` is not a zoo DETR."""
    layers = {layer.name for layer in model.layers}
    if not {"object_queries", "input_projection", "decoder_norm"} <= layers:
        return None
    encoder = sum(1 for n in layers if n.startswith("encoder") and n.endswith("_attn_norm"))
    decoder = sum(1 for n in layers if n.startswith("decoder") and n.endswith("_self_attn_norm"))
    backbone = backbone_config(model)
    backbone["backbone_kwargs"]["out_indices"] = [4]  # DETR reads the last stage only
    attn = model.get_layer("encoder0_attn")
    d = int(model.get_layer("input_projection").filters)
    labels = int(model.get_layer("logits").units) - 1
    config = dict(
        architectures=[ARCHITECTURE], model_type="detr", **backbone, d_model=d,
        encoder_layers=encoder, decoder_layers=decoder,
        encoder_attention_heads=attn.num_heads, decoder_attention_heads=attn.num_heads,
        encoder_ffn_dim=int(model.get_layer("encoder0_ffn_fc1").units),
        decoder_ffn_dim=int(model.get_layer("encoder0_ffn_fc1").units),
        num_queries=int(model.get_layer("object_queries").num_queries),
        auxiliary_loss=len(model.get_layer("decoder_norm")._inbound_nodes) > 1,
        position_embedding_type="sine", dilation=False, activation_function="relu",
        id2label={str(i): f"LABEL_{i}" for i in range(labels)},
        label2id={f"LABEL_{i}": i for i in range(labels)})
    return config, export(detr_plan(model, True, 4, encoder, decoder))


register_checkpoint_family("huggingface", [ARCHITECTURE], load_hf_detr, export_hf_detr,
                           family="detr")
