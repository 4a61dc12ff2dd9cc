"""The registered DETR variants: the paper's ResNet-50/101 models, the seed article's demo
model and a micro model for the generated shapes set; thin entries over the builders."""
from edgezoo.zoo.detr.demo import detr_demo
from edgezoo.zoo.detr.model import ARXIV, PAPER, detr
from edgezoo.zoo.registry import register_model


def _register(name, builder, input_shape=(800, 800, 3), num_classes=91, **kwargs):
    register_model(name, builder, family="detr", task="detection", paper=PAPER, arxiv=ARXIV,
                   input_shape=input_shape, num_classes=num_classes, **kwargs)


# The paper's COCO models (91 category ids, so 92 logits with no-object): ResNet-50 / -101 with
# frozen batch norm, d 256, 8 heads, FFN 2048, 6 + 6 layers, 100 queries, dropout 0.1. COCO
# images are resized to 800 px on the short side; a Keras graph needs one static size.
_register("detr_r50", detr, backbone="resnet50")
_register("detr_r101", detr, backbone="resnet101")
_register("detr_demo", detr_demo)
# For the 64x64 shapes set (4 classes, at most 4 objects): a 3-stage reduced ResNet (stride 16,
# a 4x4 feature map), d 64, 4 heads, FFN 128, 2 + 2 layers, 10 queries.
_register("detr_micro", detr, input_shape=(64, 64, 3), num_classes=4,
          backbone_depths=(1, 1, 1), backbone_widths=(16, 32, 64), stem_width=16, d_model=64,
          num_heads=4, ffn_dim=128, encoder_layers=2, decoder_layers=2, num_queries=10)
