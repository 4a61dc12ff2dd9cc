"""CSWin Transformer (Dong et al.): builder, its cross-shaped window attention and variants."""
from edgezoo.zoo.cswin import variants  # noqa: F401  (registers the variants)
from edgezoo.zoo.cswin.layers import CrossShapedWindowAttention
from edgezoo.zoo.cswin.model import cswin, cswin_block

__all__ = ["CrossShapedWindowAttention", "cswin", "cswin_block"]
