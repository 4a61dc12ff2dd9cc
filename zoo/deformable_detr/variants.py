"""The registered Deformable DETR variants: the paper's ResNet-50 model and a micro model for the
generated shapes set; thin entries over the builder."""
from edgezoo.zoo.deformable_detr.model import ARXIV, PAPER, deformable_detr
from edgezoo.zoo.registry import register_model

# The paper's COCO model (91 category ids, sigmoid scoring: 91 logits): ResNet-50 (frozen BN),
# 4 levels x 8 heads x 4 points, d 256, FFN 1024, 6 + 6 layers, 300 queries, dropout 0.1.
register_model("deformable_detr_r50", deformable_detr, family="deformable_detr",
               task="detection_sigmoid", paper=PAPER, arxiv=ARXIV, input_shape=(768, 768, 3),
               num_classes=91)
# For the 64x64 shapes set: a reduced 4-stage ResNet, levels at strides 8-64 (8x8 ... 1x1),
# d 64, 4 heads, 4 points, FFN 128, 2 + 2 layers, 10 queries, 4 classes.
_MICRO = dict(input_shape=(64, 64, 3), num_classes=4, backbone_depths=(1, 1, 1, 1),
              backbone_widths=(8, 16, 32, 64), stem_width=16, d_model=64, num_heads=4, ffn_dim=128,
              encoder_layers=2, decoder_layers=2, num_queries=10)
register_model("deformable_detr_micro", deformable_detr, family="deformable_detr",
               task="detection_sigmoid", paper=PAPER, arxiv=ARXIV, **_MICRO)
# The paper's two improvements on the ResNet-50 model: iterative box refinement (a class and box
# head per decoder layer) and the two-stage model (proposals from the encoder; refines too).
register_model("deformable_detr_r50_refine", deformable_detr, family="deformable_detr",
               task="detection_sigmoid", paper=PAPER, arxiv=ARXIV, input_shape=(768, 768, 3),
               num_classes=91, box_refine=True)
register_model("deformable_detr_r50_two_stage", deformable_detr, family="deformable_detr",
               task="detection_sigmoid", paper=PAPER, arxiv=ARXIV, input_shape=(768, 768, 3),
               num_classes=91, box_refine=True, two_stage=True)
register_model("deformable_detr_micro_refine", deformable_detr, family="deformable_detr",
               task="detection_sigmoid", paper=PAPER, arxiv=ARXIV, box_refine=True, **_MICRO)
# TFLite Micro has no TOPK_V2: this one runs in LiteRT only (a row of MICRO_UNSUPPORTED)
register_model("deformable_detr_micro_two_stage", deformable_detr, family="deformable_detr",
               task="detection_sigmoid", paper=PAPER, arxiv=ARXIV, box_refine=True,
               two_stage=True, **_MICRO)
