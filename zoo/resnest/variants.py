"""The registered resnest variants: the paper's sizes and micro sizes, thin entries over the builder."""
from edgezoo.zoo.registry import register_model
from edgezoo.zoo.resnest.model import PAPER, ARXIV, resnest


def _register(name, input_shape, num_classes=1000, **kwargs):
    register_model(name, resnest, family="resnest", task="classification", paper=PAPER,
                   arxiv=ARXIV, input_shape=input_shape, num_classes=num_classes, **kwargs)


# The paper's ImageNet models at their training resolutions (timm resnest50d, resnest101e, ...).
_register("resnest50", (224, 224, 3), layers=(3, 4, 6, 3), stem_width=32)
_register("resnest101", (256, 256, 3), layers=(3, 4, 23, 3), stem_width=64)
_register("resnest200", (320, 320, 3), layers=(3, 24, 36, 3), stem_width=64)
_register("resnest269", (416, 416, 3), layers=(3, 30, 48, 8), stem_width=64)
# Sized for a Cortex-M4 class board: 32x32 grey digits, three narrow stages (total stride 16).
_register("resnest_micro", (32, 32, 1), num_classes=10, layers=(1, 1, 1), stem_width=8,
          base_planes=16, attn_min_channels=8)
