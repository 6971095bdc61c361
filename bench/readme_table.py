"""Render the README's generated sections from bench/results: the rate-accuracy tables (between the bench
markers) and the decision cost tables (between the decide markers).

Usage: python bench/readme_table.py [--check]   (--check: exit 1 if README.md is out of date)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("local-in-labels", "local-top1")
NAMES = {"oracle": "oracle, any action (bound)", "oracle:jpeg": "oracle, JPEG quality (bound)",
         "oracle:jpeg+size": "oracle, JPEG quality x size (bound)"}
TABLE_QUALITIES = {"other codecs": (15, 50), "size caps": (15, 35)}
"""Which fixed rungs of the other codecs and of each size cap the table shows (the plot has every point)."""


def what_it_says(rows: list[dict]) -> list[str]:
    """Each agent against the cheapest fixed JPEG action at least as accurate, and the oracle over its actions."""
    fixed = [r for r in rows if r["kind"] == "fixed" and r["codec"] == "jpeg"]
    oracles = {r["policy"]: r for r in rows if r["kind"] == "oracle"}
    lines = []
    for agent in (r for r in rows if r["kind"] == "agent"):
        sized = any("@" in action for action in agent["quality_histogram"])
        oracle = oracles["oracle:jpeg+size" if sized else "oracle:jpeg"]
        rival = min((f for f in fixed if f["accuracy"] >= agent["accuracy"]), key=lambda f: f["bytes_vs_reference"])
        saved = 1 - agent["bytes_vs_reference"] / rival["bytes_vs_reference"]
        above = agent["bytes_vs_reference"] / oracle["bytes_vs_reference"] - 1
        lines.append(f"`{agent['policy']}` sends {agent['bytes_vs_reference']:.3f} of the q=75 bytes at "
                     f"{agent['accuracy']:.1%} accuracy: {abs(saved):.0%} {'fewer' if saved >= 0 else 'more'} bytes "
                     f"than `{rival['policy']}` "
                     f"({rival['bytes_vs_reference']:.3f} at {rival['accuracy']:.1%}), the cheapest fixed JPEG "
                     f"action at least as accurate, and {above:.0%} more than the per-image oracle over JPEG "
                     f"{'quality and size' if sized else 'quality'} ({oracle['bytes_vs_reference']:.3f}), a bound no "
                     "policy reaches because it needs every rung's answer. It "
                     f"{'dominates' if agent['dominates_fixed_jpeg'] else 'does not dominate'} "
                     "every fixed JPEG action.")
    return lines


def render_rates(results_dir: Path) -> str:
    parts = []
    for run in RUNS:
        path = results_dir / run / "bench.json"
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        parts.append(f"**Backend `{summary['backend']}`, hit rule `{summary['rule']}`, {summary['images']} held-out "
                     f"photos ({summary['subset']}-indexed), reference {summary['reference']}** "
                     f"(`{path.relative_to(ROOT)}`)\n")
        parts.append("| policy | bytes vs q=75 | accuracy | mean KiB | dominates every fixed JPEG action |")
        parts.append("|---|---:|---:|---:|:---:|")
        for row in summary["rows"]:
            kind = "size caps" if row.get("short_side") else "other codecs" if row.get("codec") != "jpeg" else ""
            if row["kind"] == "fixed" and kind and row["quality"] not in TABLE_QUALITIES[kind]:
                continue  # the plot has every point; the table keeps it readable
            dominance = {True: "yes", False: "no"}.get(row.get("dominates_fixed_jpeg"), "")
            name = NAMES.get(row["policy"], row["policy"])
            parts.append(f"| {name} | {row['bytes_vs_reference']:.3f} | {row['accuracy']:.3f} | "
                         f"{row['mean_bytes'] / 1024:.2f} | {dominance} |")
        parts.extend(f"\n{line}" for line in what_it_says(summary["rows"]))
        parts.append(f"\n![rate-accuracy, {run}](bench/results/{run}/bench.png)\n")
    return "\n".join(parts)


def cpu_note(host: dict) -> str:
    """` (AMD EPYC, no VNNI)`: the CPU sets the int8 surrogate's speed, and with it the decision's ratios."""
    if "vnni" not in host:
        return ""
    return f" ({host.get('cpu_model') or 'x86'}, {'VNNI' if host['vnni'] else 'no VNNI'})"


def exits(row: dict) -> str:
    """Share of decisions the screen ended after two passes, and what those cost."""
    share = row["early_exits"]["share"]
    return f"{share:.0%} ({row['early_exits']['exited']['p50_ms']:.1f})" if share else "0%"


def render_decide(results_dir: Path) -> str:
    if not (results_dir / "decide.json").is_file() or not (results_dir / "observation.json").is_file():
        return ""
    decide = json.loads((results_dir / "decide.json").read_text())
    observation = json.loads((results_dir / "observation.json").read_text())
    host = decide["machine"]
    parts = [f"**`decide()` of `{decide['agent']}` ({decide['featurizer']}) against its floor** "
             f"(`bench/results/decide.json`, {host['cpu_count']} CPUs{cpu_note(host)}, "
             f"load {host['load_average_1m_at_start']} at start)\n",
             "| upload | decide p50 / p90 ms | early exits (their p50 ms) | floor (decode + one encode) p50 ms "
             "| local `recognize()` p50 ms | decide / floor | decide / recognize | reference size error p50 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, row in decide["results"].items():
        size = "x".join(str(v) for v in row["size_px"])
        parts.append(f"| {label} ({size}{' and others' if label == '0.2MP' else ''}) | "
                     f"{row['decide']['p50_ms']:.1f} / {row['decide']['p90_ms']:.1f} | {exits(row)} | "
                     f"{row['floor_decode_plus_one_encode']['p50_ms']:.1f} | "
                     f"{row['local_backend_recognize']['p50_ms']:.1f} | "
                     f"{row['decide_p50_vs_floor']:.2f} | {row['decide_p50_vs_recognize']:.2f} | "
                     f"{row['size_estimates']['reference_bytes_abs_rel_error_p50']:.1%} |")
    parts.append("")
    for name, target in decide["targets"].items():
        parts.append(f"- `{name}`: {target['measured']:.2f} against a target of {target['target']} "
                     f"({'met' if target['pass'] else 'missed'})")
    fit = observation["images"]
    parts.append(f"\n**What each observation costs and saves** (`bench/results/observation.json`; bytes from a "
                 f"per-rung logistic fit on the {fit['fit']}, scored on the {fit['scored']})\n")
    parts.append("| observation | surrogate passes | decision p50 ms | / recognize "
                 "| bytes @ 98% in-labels | bytes @ 92% top-1 |")
    parts.append("|---|---:|---:|---:|---:|---:|")
    for row in observation["rows"]:
        parts.append(f"| `{row['featurizer']}` | {row['surrogate_passes']} | {row['decision']['p50_ms']:.1f} | "
                     f"{row['decision_p50_vs_recognize']:.2f} | {row['in-labels_at_98%']['bytes_vs_reference']:.3f} | "
                     f"{row['top1_at_92%']['bytes_vs_reference']:.3f} |")
    return "\n".join(parts) + "\n"


def render_daemon(results_dir: Path) -> str:
    if not (results_dir / "hold_target.json").is_file() or not (results_dir / "daemon.json").is_file():
        return ""
    hold = json.loads((results_dir / "hold_target.json").read_text())
    overhead = json.loads((results_dir / "daemon.json").read_text())
    target = hold["target"]
    parts = [f"**Holding {hold['target_accuracy']:.0%} on a backend the agent never saw** "
             f"(`bench/results/hold_target.json`: `{hold['policy']}`, trained against "
             f"{hold['trained_against'] or 'local:lite2'}, served against `{hold['backend']}`; {hold['images']}; "
             f"{hold['stream_length']} images per order; every served answer scored against its reference)\n",
             "| rules | order | kept, last 300 | kept, after the first 300 | bytes sent / reference | "
             "uploaded incl. estimates | calls per image | fixed quality at the same accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run in hold["runs"]:
        tail, after = run["last_300"], run["after_300"]
        fixed = run["fixed_quality_at_same_accuracy_last_300"]
        parts.append(f"| {run['rules']} | {run['order']} | {tail['served_accuracy']:.3f} | "
                     f"{after['served_accuracy']:.3f} | {tail['bytes_vs_reference']:.3f} | "
                     f"{tail['uploaded_bytes_vs_reference']:.3f} | {tail['calls_per_image']:.2f} | "
                     f"{fixed['interpolated_bytes_vs_reference']:.3f} |")
    parts.append(f"\n- Settled (every image after the first 300): within 1 point of the target in "
                 f"{target['orders_within_1pt_after_300']} orders "
                 f"(mean {target['served_accuracy_after_300_mean']:.3f}); "
                 f"a dial set exactly at the target would land there {target['perfect_dial_within_1pt_after_300']:.0%} "
                 f"of the time, the binomial noise of so many answers.")
    parts.append(f"- Last 300 images: within 1 point in {target['orders_within_1pt_last_300']} orders (mean "
                 f"{target['served_accuracy_last_300_mean']:.3f}); over so few answers even a perfect dial lands "
                 f"within 1 point only {target['perfect_dial_within_1pt_last_300']:.0%} of the time.")
    many = hold.get("many_orders")
    if many:
        shipped, before = many["shipped"], many["old_dial"]
        low, median, high = shipped["served_accuracy_after_300_percentiles_5_50_95"]
        parts.append(f"- Over {many['orders']} orders (the same daemon, each photo probed once and each upload asked "
                     f"once; the first {many['live_orders_replayed']} replay the live runs exactly: "
                     f"{'yes' if many['replays_live_runs'] else 'NO'}): settled accuracy within 1 point in "
                     f"{shipped['orders_within_1pt_after_300_share']:.0%} of them, against "
                     f"{many['perfect_dial_within_1pt_after_300']:.0%} for a perfect dial and "
                     f"{before['orders_within_1pt_after_300_share']:.0%} for the old dial (gain 0.5, cap 3); "
                     f"mean {shipped['served_accuracy_after_300_mean']:.3f}, 5th to 95th percentile {low:.3f} to "
                     f"{high:.3f} (median {median:.3f}), at {shipped['bytes_vs_reference_after_300_mean']:.3f} of the "
                     "reference bytes.")
    result = overhead["overhead"]
    parts.append(f"- Daemon overhead per inference request beside `decide()` and `recognize()` "
                 f"(`bench/results/daemon.json`): p50 {result['p50_ms']:.3f} ms, p90 {result['p90_ms']:.3f} ms "
                 f"(target < {overhead['target']['overhead_p50_ms']:.0f} ms p50: "
                 f"{'met' if overhead['target']['met'] else 'missed'}).")
    return "\n".join(parts) + "\n"


def busy_cores(run: dict) -> float:
    return run["cpu_ms_per_request"]["total"] * run["throughput_per_s"] / 1000


def render_proxy(results_dir: Path) -> str:
    if not (results_dir / "proxy_load.json").is_file():
        return ""
    load = json.loads((results_dir / "proxy_load.json").read_text())
    runs, uplink = load["runs"], load["uplink"]
    parts = [f"**The proxy under load** (`bench/results/proxy_load.json`: {load['setup']}; load "
             f"{load['machine']['load_average_1m_at_start']} at start)\n",
             "| server | decision workers | requests | throughput /s | p50 ms | p99 ms | bytes sent / received "
             "| RSS after warm-up -> end MB | CPU ms / request: all (decisions) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, run in runs.items():
        workers = "-" if mode == "passthrough" else run["workers"]
        cpu = run["cpu_ms_per_request"]
        parts.append(f"| {mode.replace('_', ' ')} | {workers} | {run['requests']:,} | {run['throughput_per_s']:.1f} | "
                     f"{run['p50_ms']:.0f} | "
                     f"{run['p99_ms']:.0f} | {run['bytes_sent_vs_received']:.3f} | "
                     f"{run['rss_mb_after_warmup']:.0f} -> {run['rss_mb_at_end']:.0f} | "
                     f"{cpu['total']:.0f} ({cpu['decision_workers']:.0f}) |")
    target = load["target"]
    parts.append(f"\n- Throughput: {load['throughput_vs_passthrough']:.0%} of the pass-through's, against a target "
                 f"of {target['throughput_vs_passthrough']:.0%} ({'met' if target['met'] else 'missed'}). The "
                 "CPU column sums the clients, the fake cloud, the proxy's server and its decision workers per "
                 f"request; times throughput, the pass-through kept {busy_cores(runs['passthrough']):.1f} of "
                 f"{load['machine']['cpu_count']} cores busy (it waits on its clients) and the proxy "
                 f"{busy_cores(runs['adacompress']):.1f} (it waits on the cores, mostly for the decision's "
                 "surrogate passes: see \"What a decision costs\").")
    timeline = runs["adacompress"]["rss_mb_timeline"]
    parts.append(f"- Memory after each tenth of the {runs['adacompress']['requests']:,} requests (MB): "
                 f"{', '.join(f'{mb:.0f}' for _, mb in timeline)}; "
                 f"{timeline[-1][1] - timeline[len(timeline) // 2 - 1][1]:+.0f} MB over the second half.")
    felt = ", ".join(f"{name.replace('_', ' ')} (mean {r['mean_upload_bytes'] / 1000:.0f} kB) "
                     f"{r['through_proxy']['p50_ms']:.0f} ms through the proxy against {r['direct']['p50_ms']:.0f} ms "
                     "direct" for name, r in uplink.items() if isinstance(r, dict))
    parts.append(f"- Behind a {uplink['mbit_s']:.0f} Mbit/s uplink, end-to-end p50 per request: {felt}.")
    parts += [other_host_proxy(path, runs["adacompress"]) for path in sorted(results_dir.glob("proxy_load-*.json"))]
    return "\n".join(parts) + "\n"


def other_host_proxy(path: Path, here: dict) -> str:
    """A shorter run on another host (`proxy_load-NAME.json`), in one line: the share moves with the CPU."""
    load = json.loads(path.read_text())
    runs = load["runs"]
    return (f"- On another host{cpu_note(load['machine'])}, `bench/results/{path.name}`, "
            f"{runs['adacompress']['requests']:,} requests: {runs['adacompress']['throughput_per_s']:.1f} requests/s "
            f"against the pass-through's {runs['passthrough']['throughput_per_s']:.1f} "
            f"({load['throughput_vs_passthrough']:.0%}); the decision workers used "
            f"{runs['adacompress']['cpu_ms_per_request']['decision_workers']:.1f} ms of CPU a request "
            f"(above: {here['cpu_ms_per_request']['decision_workers']:.1f}). See \"Where the cores go\" in "
            "`docs/architecture.md`.")


def render_replay(results_dir: Path) -> str:
    parts = []
    for name in ("day-to-night", "provider-swap"):
        folder = results_dir / "replay" / name
        if not (folder / "summary.json").is_file():
            continue
        summary = json.loads((folder / "summary.json").read_text())
        rows = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
        parts.append(f"**`{name}`** (`bench/results/replay/{name}/`: the held-out sample photos, local backend, "
                     "`pretrained:local-lite2`, both rule sets on the same stream; accuracy scored offline on "
                     "every image)\n")
        parts.append("| rules | phase | images | accuracy | bytes / reference | extra calls (estimates) | "
                     "extra calls, last 100 of the phase | retrains | images to recover |")
        parts.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for rules, result in summary["rules"].items():
            for phase in result["phases"]:
                mine = [r for r in rows if r["rules"] == rules and r["phase"] == phase["phase"]][-100:]
                tail = sum(r["estimated"] for r in mine) / len(mine)
                recover = phase["images_to_recover"]
                parts.append(f"| {rules} | {phase['phase']} | {phase['images']} | {phase['accuracy']:.3f} | "
                             f"{phase['bytes_vs_reference']:.3f} | {phase['estimate_calls_overhead']:.0%} | "
                             f"{tail:.0%} | {phase['retrains']} | {'-' if recover is None else recover} |")
        parts.append(f"\n![{name}: rolling accuracy and bytes, both rule sets]"
                     f"(bench/results/replay/{name}/timeline.png)\n")
    seeds = results_dir / "drift_seeds.json"
    if seeds.is_file():
        drift = json.loads(seeds.read_text())
        phases = list(drift["results"]["shipped"])
        parts.append(f"**`{drift['scenario']}` under {drift['seeds']} daemon seeds** "
                     "(`bench/results/drift_seeds.json`: which requests become estimates is a random draw, so one "
                     "run is one sample; the same stream through the same daemon per seed)\n")
        parts.append("| rules | phase | accuracy (sd) | share estimated (sd) | bytes / reference |")
        parts.append("|---|---|---:|---:|---:|")
        for rules, label in (("shipped", "adacompress"), ("old_dial", "adacompress, old dial (gain 0.5, cap 3)")):
            for phase in phases:
                row = drift["results"][rules][phase]
                parts.append(f"| {label} | {phase} | {row['kept_mean']:.3f} ({row['kept_sd']:.3f}) | "
                             f"{row['estimated_share_mean']:.0%} ({row['estimated_share_sd']:.0%}) | "
                             f"{row['bytes_vs_reference_mean']:.3f} |")
        parts.append("")
        for phase, floors in drift["floors_at_the_lowest_dial"].items():
            reach = ", ".join(f"{label} {row['kept']:.3f} ({row['bytes_vs_reference']:.2f})"
                              for label, row in floors.items())
            parts.append(f"- {phase.capitalize()}, every request at the dial's lowest setting under each quality "
                         f"floor (answers kept, bytes / reference): {reach}.")
        parts.append("")
    return "\n".join(parts)


BLOCKS = {"bench": render_rates, "decide": render_decide, "daemon": render_daemon, "proxy": render_proxy,
          "replay": render_replay}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = (ROOT / "README.md").read_text()
    updated = readme
    for block, render in BLOCKS.items():
        start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
        head, _, rest = updated.partition(start)
        _, _, tail = rest.partition(end)
        updated = f"{head}{start}\n{render(ROOT / 'bench' / 'results')}\n{end}{tail}"
    if args.check:
        return 0 if updated == readme else 1
    (ROOT / "README.md").write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
