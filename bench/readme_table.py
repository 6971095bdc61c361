"""Render bench/results/*/bench.json as the README's results table (between the bench markers).

Usage: python bench/readme_table.py [--check]   (--check: exit 1 if README.md is out of date)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
RUNS = ("local-in-labels", "local-top1")
NAMES = {"oracle": "oracle, any codec (bound)", "oracle:jpeg": "oracle, JPEG (bound)"}


def render(results_dir: Path = ROOT / "bench" / "results") -> str:
    parts = []
    for run in RUNS:
        path = results_dir / run / "bench.json"
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        parts.append(f"**Backend `{summary['backend']}`, hit rule `{summary['rule']}`, {summary['images']} held-out "
                     f"photos ({summary['subset']}-indexed), reference {summary['reference']}** "
                     f"(`{path.relative_to(ROOT)}`)\n")
        parts.append("| policy | bytes vs q=75 | accuracy | mean KiB | dominates fixed JPEG |")
        parts.append("|---|---:|---:|---:|:---:|")
        for row in summary["rows"]:
            if row["kind"] == "fixed" and row["codec"] != "jpeg" and row["quality"] not in (15, 50):
                continue  # the plot has every point; the table keeps it readable
            dominance = {True: "yes", False: "no"}.get(row.get("dominates_fixed_jpeg"), "")
            name = NAMES.get(row["policy"], row["policy"])
            parts.append(f"| {name} | {row['bytes_vs_reference']:.3f} | {row['accuracy']:.3f} | "
                         f"{row['mean_bytes'] / 1024:.2f} | {dominance} |")
        parts.append(f"\n![rate-accuracy, {run}](bench/results/{run}/bench.png)\n")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = (ROOT / "README.md").read_text()
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    updated = f"{head}{START}\n{render()}\n{END}{tail}"
    if args.check:
        return 0 if updated == readme else 1
    (ROOT / "README.md").write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
