"""The registered vit variants: the paper's sizes and micro sizes, thin entries over the builder."""
from edgezoo.zoo.registry import register_model
from edgezoo.zoo.vit.model import PAPER, ARXIV, vit


def _register(name, input_shape=(224, 224, 3), num_classes=1000, **kwargs):
    register_model(name, vit, family="vit", task="classification", paper=PAPER,
                   arxiv=ARXIV, input_shape=input_shape, num_classes=num_classes, **kwargs)


# The paper's sizes (Table 1) and DeiT's Ti/S (Touvron et al., arXiv 2012.12877).
_register("vit_ti16", patch_size=16, hidden_dim=192, depth=12, num_heads=3, mlp_dim=768)
_register("vit_s16", patch_size=16, hidden_dim=384, depth=12, num_heads=6, mlp_dim=1536)
_register("vit_b16", patch_size=16, hidden_dim=768, depth=12, num_heads=12, mlp_dim=3072)
_register("vit_l16", patch_size=16, hidden_dim=1024, depth=24, num_heads=16, mlp_dim=4096)
_register("vit_h14", patch_size=14, hidden_dim=1280, depth=32, num_heads=16, mlp_dim=5120)
# Sized for a Cortex-M4 class board: 16x16 grey images, 4x4 patches, 4 blocks of width 64.
_register("vit_micro", input_shape=(16, 16, 1), num_classes=10, patch_size=4, hidden_dim=64,
          depth=4, num_heads=4, mlp_dim=128)
