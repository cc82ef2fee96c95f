"""The CLI's side of landing: a rich progress bar (rows, rows/s, bytes) and the history table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn


def ingest_with_progress(client: Any, dataset: str, file: Path | None, *, encoding: str | None, mode: str | None,
                         kind: str | None, console: Console, show: bool) -> dict[str, Any]:
    """``client.ingest`` with a live bar on ``console`` (local mode; remote mode has no stream to watch)."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), DownloadColumn(),
               TextColumn("{task.fields[rows]:,} rows"), TextColumn("{task.fields[rate]:,.0f} rows/s"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show, transient=False) as bar:
        task = bar.add_task(f"ingest {dataset}", total=None, rows=0, rate=0.0)

        def progress(rows: int, done: int | None, total: int | None) -> None:
            elapsed = bar.tasks[0].elapsed or 1e-9
            bar.update(task, completed=done or 0, total=total, rows=rows, rate=rows / elapsed)

        return client.ingest(dataset, file, encoding=encoding, mode=mode, kind=kind, progress=progress)


def render_history(console: Console, d: dict[str, Any]) -> None:
    """One line per version (a line, not a table: the load id stays whole at any terminal width)."""
    def line(text: str) -> None:
        console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    line(f"{d['dataset']} (current version {d['current_version']}; * marks it)")
    for v in d["versions"]:
        src = v.get("source") or {}
        where = src.get("file_name") or src.get("path") or src.get("url") or src.get("operation") or ""
        if src.get("query"):
            where += f" [{str(src['query'])[:40]}]"
        val = v.get("validation") or {}
        verdict = "" if not val else ("passed" if val.get("success") else "FAILED") + (
            f" ({val.get('checks')} checks)" if val.get("checks") else "")
        what = " ".join(str(x) for x in (v.get("operation"), v.get("mode"), v.get("connector"), where) if x)
        line(f"  v{v['version']}{'*' if v.get('current') else ''} {(v.get('timestamp') or '')[:19]} {what}: "
             f"{_n(v.get('rows_in')) or '?'} in, {_n(v.get('rows_out')) or '?'} out, "
             f"{_n(v.get('rows_quarantined')) or 0} quarantined"
             + (f"; validation {verdict}" if verdict else "") + (f"; load {v['load_id']}" if v.get("load_id") else ""))


def _n(x: Any) -> str:
    return "" if x is None else f"{x:,}"
