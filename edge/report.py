"""report.json and report.md: what a person checks before flashing a board."""
import json

from edgezoo.base import files


def _fmt_bytes(n):
    return "—" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


def _pct(x):
    return "—" if x is None else f"{100 * x:.2f} %"


def render_markdown(report):
    """A short human-readable page for ``report`` (the dict written to report.json)."""
    lines = [f"# edgezoo report: {report.get('model', '?')}", ""]
    if report.get("plot"):
        lines += [f"![weights per layer and TFLite Micro error per op]({report['plot']})", ""]
    budget = report.get("budget") or {}
    target = report.get("target")
    if target:
        verdict = "fits" if report.get("fits") else "does NOT fit"
        checks = report.get("checks") or {}
        failed = [name for name, c in checks.items() if not c["passed"]]
        summary = ("" if not checks else "; every check passed" if not failed else
                   f"; checks FAILED: {', '.join(failed)} ({len(failed)} of {len(checks)})")
        lines += [f"**{report.get('model')} {verdict} `{target}`{summary}.**", ""]
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
    arena = report.get("arena") or {}
    if arena:
        rows.append(("arena: recorded total / smallest that runs (bisected)",
                     f"{arena['recorded_bytes']:,} / {arena['minimum_bytes']:,} B"))
    contract = report.get("input_contract")
    if contract:
        rows.append(("input range", f"[{contract['range'][0]:g}, {contract['range'][1]:g}] "
                                    f"({contract['origin']})"))
    rows += [(k, "; ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict) else v)
             for k in ("checkpoint", "preprocessing") if (v := report.get(k))]
    for key, value in (report.get("accuracy") or {}).items():
        rows.append((f"accuracy ({key})", _pct(value)))
    agreement = report.get("agreement")
    if agreement:
        verdict = "" if agreement["informative"] else " — **uninformative**: " + "; ".join(
            agreement["reasons"])
        rows.append((f"{agreement['measure']} agreement with the float model "
                     f"({agreement['runtime']}, {agreement['inputs']})",
                     _pct(agreement["value"]) + verdict))
        for gate, value in (agreement.get("checks") or {}).items():
            if len(agreement["checks"]) > 1:
                rows.append((f"  {gate.replace('_', ' ')}", _pct(value)))
    runtimes = report.get("runtimes") or {}
    if "micro_vs_reference_max_lsb_end_to_end" in runtimes:
        rows.append(("TFLite Micro vs LiteRT reference kernels, end to end (not gated)",
                     f"{runtimes['micro_vs_reference_max_lsb_end_to_end']} LSB"))
    if "default_vs_micro_top1" in runtimes:
        rows.append(("LiteRT default (XNNPACK) vs TFLite Micro, "
                     + runtimes.get("runtime_measure", "top-1"),
                     _pct(runtimes["default_vs_micro_top1"])))
    latency = report.get("latency_estimate") or {}
    estimate = latency.get("estimate_ms")
    if estimate is not None:
        rows.append((f"latency estimate on {target} (from MACs, not measured)", f"{estimate:.2f} ms"))
    elif latency.get("reason"):  # dropped: say why
        rows.append((f"latency estimate on {target}", f"none: {latency['reason']}"))
    lines += ["| what | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += _check_lines(report)
    data = report.get("data") or {}
    if data.get("source"):
        lines += ["", f"Data: {data['source']}. Agreement and accuracy are measured on the "
                      f"{data.get('evaluated_on', 'test')} split only."]
    lines += _tensor_lines(report)
    lines += _cpu_form_lines(report) + _breakdown_lines(report)
    lines += _recipe_lines(report)
    islands = report.get("float_islands") or []
    if islands:
        lines += ["", "## Float islands (ops computing in float in a quantized model)", "",
                  "| op | ops | layers (first 5) |", "|---|---|---|"]
        lines += [f"| {i['op']} | {i['count']} | {', '.join(i['layers'])} |" for i in islands]
    ops = report.get("op_types") or {}
    if ops:
        lines += ["", "## Operators", "", "| op | tensor types |", "|---|---|"]
        lines += [f"| {op} | {', '.join(types)} |" for op, types in ops.items()]
    if arena.get("note"):
        lines += ["", f"_{arena['note']}_"]
    elif budget:
        lines += ["", f"_{budget['ram']['note']}._"]
    return "\n".join(lines) + "\n"


def _cpu_form_lines(report):
    """Each int8 form measured for a LiteRT board, and which one ships and why."""
    c = report.get("cpu_form")
    if not c or "candidates" not in c:
        return [] if not c else ["", f"int8 form: **{c['chosen']}** ({c['rule']})."]
    lines = ["", "## int8 form for this CPU", "",
             f"Ships **{c['chosen']}**: {c['rule']}; agreement on {c['chosen_on']}; "
             f"{c['timing']}.", "", "| form | median ms [min, max] | XNNPACK partitions | "
             ".tflite | agreement |", "|---|---|---|---|---|"]
    for form, row in c["candidates"].items():
        agree = f"{row['agreement']:.4f}" if "agreement" in row else "—"
        if row.get("error"):
            lines.append(f"| {form} | not run: {row['error']} | — | {row['bytes']:,} B | — |")
            continue
        lines.append(f"| {form} | {row['median_ms']:.3f} [{min(row['ms']):.3f}, "
                     f"{max(row['ms']):.3f}] | {row['partitions']} | {row['bytes']:,} B | {agree} |")
    return lines


def _breakdown_lines(report):
    """XNNPACK's partitions and the slowest op types, timed one by one (host figures)."""
    b = report.get("latency_breakdown")
    if not b:
        return []
    lines = ["", "## Where the time goes (LiteRT default kernels, this host)", "",
             f"XNNPACK partitions: {b['xnnpack_partitions']}. Each op alone: "
             f"{b['total_ms']:.3f} ms in all. _{b['note']}._", "", "| op | ms (all its ops) |",
             "|---|---|"]
    lines += [f"| {op} | {ms:.4f} |" for op, ms in list(b["by_op_ms"].items())[:8]]
    return lines


def _tensor_lines(report):
    """Every named input and output with its type, shape and int8 quantization, and each
    output's error against the float model (all of them are compared, not only the first)."""
    tensors = report.get("tensors") or {}
    if not tensors:
        return []
    errors = {row["tensor"]: row for row in report.get("output_errors") or []}
    lines = ["", "## Inputs and outputs", "", "| tensor | type | shape | scale | zero point | "
             "error vs float (max / mean, in float std) |", "|---|---|---|---|---|---|"]
    for kind in ("inputs", "outputs"):
        for t in tensors.get(kind, []):
            e = errors.get(t["name"])
            err = f"{e['max_over_std']:.3f} / {e['mean_over_std']:.3f}" if e else "—"
            lines.append(f"| {kind[:-1]} `{t['name']}` | {t['dtype']} | {t['shape']} | "
                         f"{t['scale']:.6g} | {t['zero_point']} | {err} |")
    return lines


def _check_lines(report):
    """Every gate with its value and limit, the thresholds used, and the verdict."""
    checks = report.get("checks") or {}
    if not checks:
        return []
    lines = ["", "## Checks", "", "| check | value | limit | result |", "|---|---|---|---|"]
    for name, c in checks.items():
        value = f"{c['value']:.4f}" if isinstance(c["value"], float) else c["value"]
        lines.append(f"| {name} | {value} | {c['limit']} | {'ok' if c['passed'] else '**FAILED**'} |")
    lines += ["", "**PASS**" if report.get("passed") else
              "**FAIL**: " + "; ".join(report.get("failures") or [])]
    first = (report.get("per_op") or {}).get("first_failure")
    if first:
        lines += ["", f"First op over its tolerance: op {first.get('index')} `{first.get('op')}` "
                      f"(layer `{first.get('layer')}`, tensor `{first.get('tensor')}`)."]
    for a in (report.get("per_op") or {}).get("arbitrated") or []:
        judged = a["arbitrated"]
        lines += ["", f"Op {a['index']} `{a['op']}` (layer `{a['layer']}`): LiteRT's reference "
                      f"kernel differs from TFLite Micro by {judged['reference_vs_micro_lsb']}"
                      " LSB; TFLite Micro equals the NumPy derivation of its integer arithmetic "
                      f"({judged['micro_vs_derivation_lsb']} LSB), so the op passes."]
    thresholds = report.get("thresholds")
    if thresholds:
        lines += ["", "Thresholds used: " + ", ".join(f"{k} = {v}" for k, v in thresholds.items())]
    return lines


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
