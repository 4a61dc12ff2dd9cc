"""report.json and report.md: what a person checks before flashing a board."""
import json

from edgezoo import files


def _fmt_bytes(n):
    return "—" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


def _pct(x):
    return "—" if x is None else f"{100 * x:.2f} %"


def render_markdown(report):
    """A short human-readable page for ``report`` (the dict written to report.json)."""
    lines = [f"# edgezoo report: {report.get('model', '?')}", ""]
    budget = report.get("budget") or {}
    target = report.get("target")
    if target:
        verdict = "fits" if report.get("fits") else "does NOT fit"
        lines += [f"**{report.get('model')} {verdict} `{target}`.**", ""]
    rows = [
        ("parameters", f"{report['params']:,}" if report.get("params") is not None else "—"),
        ("quantization", report.get("quantize", "—")),
        (".tflite size", _fmt_bytes(report.get("tflite_bytes"))),
        ("TFLite Micro arena", _fmt_bytes(report.get("arena_bytes"))),
    ]
    if budget:
        f, r = budget["flash"], budget["ram"]
        rows += [("flash used / capacity", f"{f['used_bytes']:,} / {f['capacity_bytes']:,} B "
                  f"(model + {f['reserve_bytes']:,} B runtime reserve)"),
                 ("RAM used / capacity", f"{r['used_bytes']:,} / {r['capacity_bytes']:,} B "
                  f"(arena + {r['margin_bytes']:,} B margin)")]
    for key, value in (report.get("accuracy") or {}).items():
        rows.append((f"accuracy ({key})", _pct(value)))
    if "agreement" in report:
        rows.append(("top-1 agreement, TFLite Micro int8 vs float", _pct(report["agreement"])))
    runtimes = report.get("runtimes") or {}
    if runtimes:
        rows += [("TFLite Micro vs LiteRT reference kernels, max |Δ|",
                  f"{runtimes['micro_vs_reference_max_lsb']} LSB"),
                 ("LiteRT default (XNNPACK) vs TFLite Micro, top-1", _pct(runtimes["default_vs_micro_top1"]))]
    for key, value in (report.get("latency_ms") or {}).items():
        rows.append((f"latency {key}", "—" if value is None else f"{value:.3f} ms"))
    if "wall_time_s" in report:
        rows.append(("wall time", f"{report['wall_time_s']:.1f} s"))
    lines += ["| what | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += _recipe_lines(report)
    ops = report.get("op_types") or {}
    if ops:
        lines += ["", "## Operators", "", "| op | tensor types |", "|---|---|"]
        lines += [f"| {op} | {', '.join(types)} |" for op, types in ops.items()]
    if budget:
        lines += ["", f"_{budget['ram']['note']}._"]
    return "\n".join(lines) + "\n"


def _recipe_lines(report):
    """Steps the recipe ran and what they left in the .tflite: sparsity, values per channel."""
    recipe = (report.get("provenance") or {}).get("recipe") or report.get("recipe") or {}
    lines = []
    if recipe.get("steps"):
        lines += ["", "## Recipe", "", "Steps: " + " → ".join(f"`{s}`" for s in recipe["steps"])
                  + (f"; rewrites: {', '.join(recipe['rewrites'])}" if recipe.get("rewrites") else "")]
    weights = report.get("weights") or {}
    sparsity, unique = weights.get("sparsity_by_layer") or {}, weights.get("max_unique_per_channel") or {}
    if sparsity and (recipe.get("prune") or recipe.get("prune_2of4") or recipe.get("cluster")):
        lines += ["", "| layer | zero weights in the .tflite | most distinct values in a channel |",
                  "|---|---|---|"]
        lines += [f"| {layer} | {_pct(sparsity[layer])} | {unique.get(layer, '—')} |"
                  for layer in sparsity]
    for warning in report.get("warnings") or []:
        lines += ["", f"**Warning:** {warning}"]
    worst = report.get("quantization_debugger") or []
    if worst:
        lines += ["", "## Layers losing most in int8 (TFLite quantization debugger)", "",
                  "| op | tensor | RMSE in int8 steps |", "|---|---|---|"]
        lines += [f"| {r['op']} | `{r['tensor'][:60]}` | {r['rmse_in_steps']:.2f} |" for r in worst]
    return lines


def write_reports(out_dir, report):
    """Write report.json and report.md atomically into ``out_dir``."""
    files.write_text(out_dir / "report.json", json.dumps(report, indent=2, sort_keys=False) + "\n")
    files.write_text(out_dir / "report.md", render_markdown(report))
