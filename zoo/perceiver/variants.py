"""The registered perceiver variants: the paper's sizes and micro sizes, thin entries over the builder."""
from edgezoo.zoo.registry import register_model
from edgezoo.zoo.perceiver.model import PAPER, ARXIV, PAPER_IO, ARXIV_IO, perceiver, perceiver_io


def _register(name, builder, input_shape=(224, 224, 3), num_classes=1000, **kwargs):
    io = builder is perceiver_io
    register_model(name, builder, family="perceiver_io" if io else "perceiver",
                   task="classification", paper=PAPER_IO if io else PAPER,
                   arxiv=ARXIV_IO if io else ARXIV, input_shape=input_shape,
                   num_classes=num_classes, **kwargs)


# The papers' ImageNet models at 224x224: latents 512 x 1024, 64 Fourier bands (max resolution
# 224), cross-attention 1 head, latent self-attention 8 heads, MLP widening 1.
# Perceiver: 8 cross-attends, each followed by a 6-block latent Transformer (one shared set),
# cross-attends 2..8 sharing weights. Perceiver IO: one cross-attend, the 6-block latent
# Transformer applied 8 times (shared), one learned classification query.
_register("perceiver", perceiver)
_register("perceiver_io", perceiver_io)
# Sized for a Cortex-M4 class board: 16x16 grey digits, 32 latents of width 64, 2 latent blocks.
# Band counts come from single training runs on digits (bench/perceiver_micro_digits.py): 8 bands
# (the most a 16-pixel axis allows) helped Perceiver IO, which reads the image once; the
# Perceiver, which re-reads it at each cross-attend, did no better with 8 than with 4.
_register("perceiver_micro", perceiver, input_shape=(16, 16, 1), num_classes=10, num_latents=32,
          latent_dim=64, num_cross_attends=2, self_attends_per_block=2, self_attend_heads=4,
          self_attend_widening=2, num_bands=4)
_register("perceiver_io_micro", perceiver_io, input_shape=(16, 16, 1), num_classes=10,
          num_latents=32, latent_dim=64, num_cross_attends=1, self_attends_per_block=2,
          blocks_per_cross_attend=2, self_attend_heads=4, self_attend_widening=2, num_bands=8)
