"""Shared by the benchmarks: results live in bench/results/, tables in BENCHMARKS.md sections."""
import re
from pathlib import Path

from edgezoo.base import files

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCHMARKS = ROOT / "BENCHMARKS.md"


def write_section(name, text):
    """Replace (or add) the section between <!-- NAME --> markers in BENCHMARKS.md."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    old = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    block = f"{start}\n{text}{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old)
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    files.write_text(BENCHMARKS, new)
