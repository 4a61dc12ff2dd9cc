"""The registered cswin variants: the paper's sizes and micro sizes, thin entries over the builder."""
from edgezoo.zoo.registry import register_model
from edgezoo.zoo.cswin.model import PAPER, ARXIV, cswin


def _register(name, input_shape=(224, 224, 3), num_classes=1000, **kwargs):
    register_model(name, cswin, family="cswin", task="classification", paper=PAPER,
                   arxiv=ARXIV, input_shape=input_shape, num_classes=num_classes, **kwargs)


# The paper's ImageNet-1K models at 224x224 (Table 1; the reference's CSWin_64_12211_tiny_224,
# CSWin_64_24322_small_224, CSWin_96_24322_base_224 and CSWin_144_24322_large_224). Parameters:
# 22,320,552 / 34,643,304 / 77,382,184 / 173,262,664, exactly what the reference's module list
# gives (12 C^2 + 23 C per block); the paper prints 23M / 35M / 78M / 173M (tests/test_cswin.py).
_register("cswin_t", embed_dim=64, depths=(1, 2, 21, 1), num_heads=(2, 4, 8, 16),
          stripe_widths=(1, 2, 7, 7))
_register("cswin_s", embed_dim=64, depths=(2, 4, 32, 2), num_heads=(2, 4, 8, 16),
          stripe_widths=(1, 2, 7, 7))
_register("cswin_b", embed_dim=96, depths=(2, 4, 32, 2), num_heads=(4, 8, 16, 32),
          stripe_widths=(1, 2, 7, 7))
_register("cswin_l", embed_dim=144, depths=(2, 4, 32, 2), num_heads=(6, 12, 24, 24),
          stripe_widths=(1, 2, 7, 7))
# Sized for a Cortex-M4 class board: 32x32 grey digits, feature maps 8, 4, 2 and 1 wide
# (stage 3's stripe width 2 is its whole map, so stages 3 and 4 attend globally).
_register("cswin_micro", input_shape=(32, 32, 1), num_classes=10, embed_dim=16,
          depths=(1, 1, 2, 1), num_heads=(2, 2, 4, 8), stripe_widths=(1, 2, 2, 1))
