"""Does a model fit a board? Flash (model + runtime reserve) and RAM (arena + margin)."""


def check_budget(profile, tflite_bytes, arena_bytes, decompression_bytes=0):
    """Budget of ``profile`` for a model; the arena is measured on this 64-bit host."""
    flash_used = int(tflite_bytes) + profile.flash_reserve_bytes
    ram_used = (int(arena_bytes or 0) + int(decompression_bytes) + profile.ram_margin_bytes
                if profile.micro else int(tflite_bytes) + profile.ram_margin_bytes)
    flash = {"model_bytes": int(tflite_bytes), "reserve_bytes": profile.flash_reserve_bytes,
             "used_bytes": flash_used, "capacity_bytes": profile.flash_bytes,
             "fits": flash_used <= profile.flash_bytes}
    ram = {"arena_bytes": arena_bytes, "decompression_bytes": int(decompression_bytes),
           "margin_bytes": profile.ram_margin_bytes, "used_bytes": ram_used,
           "capacity_bytes": profile.ram_bytes, "fits": ram_used <= profile.ram_bytes,
           "note": "arena measured by TFLite Micro on this 64-bit host; a 32-bit MCU needs "
                   "slightly less (smaller pointers)"}
    return {"target": profile.name, "flash": flash, "ram": ram, "fits": flash["fits"] and ram["fits"]}
