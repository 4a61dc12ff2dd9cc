"""LUT compression kept only on the layers whose decoded weights fit the board's RAM.

TFLite Micro rebuilds a LUT-compressed weight in its arena before the layer runs, so every
compressed layer trades flash for arena. After conversion the arena of the compressed model is
measured on the board's runtime; while it does not fit the board's RAM, the compressed weight
with the most decoded bytes goes back to plain int8 (and the model is measured again). When no
choice of layers fits both flash and RAM, the recipe is refused with the numbers.
"""
from edgezoo.base.errors import RecipeError


def _measure(data, profile):
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.budget import check_budget
    from edgezoo.edge.runners.micro import MicroRunner

    arena = MicroRunner(data, read_tflite(data)).measure_arena()
    return arena, check_budget(profile, len(data), arena)


def _line(name, arena, budget):
    flash, ram = budget["flash"], budget["ram"]
    return (f"{name}: flash {flash['used_bytes']:,} of {flash['capacity_bytes']:,} B, RAM "
            f"{ram['used_bytes']:,} of {ram['capacity_bytes']:,} B (arena {arena:,} B)")


def fit_lut_to_board(compressed, profile):
    """Drop LUT compression from layers (most decoded bytes first) until the model fits
    ``profile``'s RAM; record each kept layer's flash/RAM trade and each dropped one's reason
    in ``report["steps"]["micro_compression"]``. Raises RecipeError when nothing fits."""
    from edgezoo.converters.micro_compression import compress_tflite

    info = compressed.report.get("steps", {}).get("micro_compression")
    if not info or profile is None or not profile.micro:
        return
    plain = compressed.uncompressed_tflite
    arena, budget = _measure(compressed.tflite, profile)
    first = _line("every clustered layer compressed", arena, budget)
    leave = {}
    while not budget["ram"]["fits"] and info["tensors"]:
        worst = max(info["tensors"], key=lambda t: t["decoded_bytes"])
        leave[worst["tensor"]] = (f"left uncompressed: its {worst['decoded_bytes']:,} decoded "
                                  f"bytes did not fit {profile.name}'s RAM (arena {arena:,} B)")
        if len(info["tensors"]) == 1:  # none left: the plain int8 model
            info = {**info, "tensors": [], "compressed_bytes": len(plain), "decode_ops": 0,
                    "decompression_bytes": 0, "decoded_bytes_total": 0,
                    "skipped": info["skipped"] + [{**worst, "reason": leave[worst["tensor"]]}]}
            compressed.tflite = plain
        else:
            compressed.tflite, info = compress_tflite(plain, max_unique=info["max_unique"],
                                                      leave=leave)
        arena, budget = _measure(compressed.tflite, profile)
    info["ram_fit"] = {"target": profile.name, "arena_bytes": arena,
                       "ram_used_bytes": budget["ram"]["used_bytes"],
                       "ram_capacity_bytes": budget["ram"]["capacity_bytes"],
                       "left_uncompressed": sorted(leave)}
    compressed.report["steps"]["micro_compression"] = info
    if not budget["fits"]:
        last = _line(f"with {len(info['tensors'])} layer(s) compressed", arena, budget)
        raise RecipeError(f"LUT compression: no choice of compressed layers fits {profile.name}. "
                          f"{first}; {last}. Cluster fewer layers, use a board with more RAM "
                          "or flash, or set micro_compression to false")
