"""Write ``bench/RESULTS.md`` from the newest raw JSON of each benchmark in ``bench/out/``.

Called by ``python bench/run.py --results bench/RESULTS.md`` (``make bench``). Every number in the
table comes from a JSON file a run wrote; the file and the exact command are named next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ORDER = ["cli", "sandbox", "training", "ingest", "dp", "gate", "reconstruction", "utility", "differencing", "spark"]


def newest(out: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in sorted(out.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue
        name = record.get("benchmark")
        if not isinstance(name, str) or "result" not in record:
            continue
        if name not in found or record["started"] >= found[name][1]["started"]:
            found[name] = (path, record)
    return found


def _num(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
    return str(x)


def _figure_row(fig: dict[str, Any], record: dict[str, Any]) -> str:
    s = fig["spread"]
    met = {True: "**met**", False: "**not met**", None: "—"}[fig.get("met")]
    load = f"{record['load_before'][0]} → {record['load_after'][0]}"
    return (f"| `{fig['id']}` | {fig['what']} | **{_num(fig['value'])} {fig['unit']}** | {fig.get('goal') or '—'} "
            f"| {met} | {_num(s['p25'])} – {_num(s['p75'])} ({_num(s['min'])} – {_num(s['max'])}) | {fig['n']} "
            f"| {fig.get('baseline', '')} | {load} |")


def _probe(record: dict) -> str:
    if "probe_ms_before" not in record:  # recorded since session 9
        return ""
    return f", CPU probe {record['probe_ms_before']} → {record['probe_ms_after']} ms"


def render(out: Path) -> str:
    found = newest(out)
    lines = ["# Benchmark results", "",
             "Written by `python bench/run.py --results bench/RESULTS.md` (`make bench`) from the newest raw JSON "
             "of each benchmark in `bench/out/`; do not edit by hand. Each figure is the median of per-pair values "
             "(ours and a baseline run interleaved in the same run); the spread is p25 – p75 (min – max) over "
             "those pairs. Load is the 1-minute load average before → after the benchmark; under Runs, the CPU "
             "probe is the milliseconds a fixed piece of work (SHA-256 of 64 MiB, best of 3) took before → after "
             "it, which shows a busy host that the load average misses.", ""]
    machines = {json.dumps(r["machine"], sort_keys=True) for _, r in found.values()}
    for m in sorted(machines):
        d = json.loads(m)
        lines.append(f"Machine: {d.get('cores')} cores, {d.get('memory_gb')} GB RAM, {d.get('cpu')}, "
                     f"Linux {d.get('kernel')}, Python {d.get('python')}.")
    lines += ["", "| figure | what | value | goal | met | spread | n | baseline | load |",
              "|---|---|---|---|---|---|---|---|---|"]
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    for name in names:
        _, record = found[name]
        for fig in record["result"].get("figures", []):
            lines.append(_figure_row(fig, record))
    lines += ["", "## Runs", ""]
    for name in names:
        path, record = found[name]
        lines.append(f"* **{name}**: `{record['command']}` — {record['started']}, {record['seconds']} s, load "
                     f"{record['load_before']} → {record['load_after']}{_probe(record)}; raw numbers: `{_shown(path)}`")
        for note in record["result"].get("notes", []):
            lines.append(f"  * {note}")
    for name in names:
        extra = found[name][1]["result"].get("table")
        if extra:
            lines += ["", f"## {name}: {extra['title']}", "", "| " + " | ".join(extra["columns"]) + " |",
                      "|" + "---|" * len(extra["columns"])]
            lines += ["| " + " | ".join(_num(v) for v in row) + " |" for row in extra["rows"]]
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def write_results(out: Path, target: Path) -> None:
    target.write_text(render(out))
