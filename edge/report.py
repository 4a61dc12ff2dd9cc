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
    ops = report.get("op_types") or {}
    if ops:
        lines += ["", "## Operators", "", "| op | tensor types |", "|---|---|"]
        lines += [f"| {op} | {', '.join(types)} |" for op, types in ops.items()]
    if budget:
        lines += ["", f"_{budget['ram']['note']}._"]
    return "\n".join(lines) + "\n"


def write_reports(out_dir, report):
    """Write report.json and report.md atomically into ``out_dir``."""
    files.write_text(out_dir / "report.json", json.dumps(report, indent=2, sort_keys=False) + "\n")
    files.write_text(out_dir / "report.md", render_markdown(report))
