"""The CLI's side of landing: a rich progress bar (rows, rows/s, bytes) and the history table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ...i18n import _


def ingest_with_progress(client: Any, dataset: str, file: Path | None, *, encoding: str | None, mode: str | None,
                         kind: str | None, console: Console, show: bool) -> dict[str, Any]:
    """``client.ingest`` with a live bar on ``console`` (local mode; remote mode has no stream to watch)."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), DownloadColumn(),
               TextColumn("{task.fields[rows]:,} " + _("rows")), TextColumn("{task.fields[rate]:,.0f} " + _("rows/s")),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show, transient=False) as bar:
        task = bar.add_task(_("ingest {dataset}").format(dataset=dataset), total=None, rows=0, rate=0.0)

        def progress(rows: int, done: int | None, total: int | None) -> None:
            elapsed = bar.tasks[0].elapsed or 1e-9
            bar.update(task, completed=done or 0, total=total, rows=rows, rate=rows / elapsed)

        return client.ingest(dataset, file, encoding=encoding, mode=mode, kind=kind, progress=progress)


def render_history(console: Console, d: dict[str, Any]) -> None:
    """One line per version (a line, not a table: the load id stays whole at any terminal width)."""
    def line(text: str) -> None:
        console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    line(_("{dataset} (current version {version}; * marks it)").format(dataset=d["dataset"],
                                                                         version=d["current_version"]))
    for v in d["versions"]:
        src = v.get("source") or {}
        where = src.get("file_name") or src.get("path") or src.get("url") or src.get("operation") or ""
        if src.get("query"):
            where += f" [{str(src['query'])[:40]}]"
        val = v.get("validation") or {}
        verdict = "" if not val else (_("passed") if val.get("success") else _("FAILED")) + (
            _(" ({n} checks)").format(n=val.get("checks")) if val.get("checks") else "")
        what = " ".join(str(x) for x in (v.get("operation"), v.get("mode"), v.get("connector"), where) if x)
        line(f"  v{v['version']}{'*' if v.get('current') else ''} {(v.get('timestamp') or '')[:19]} {what}: "
             + _("{rows_in} in, {rows_out} out, {quarantined} quarantined").format(
                 rows_in=_n(v.get("rows_in")) or "?", rows_out=_n(v.get("rows_out")) or "?",
                 quarantined=_n(v.get("rows_quarantined")) or 0)
             + (_("; validation {verdict}").format(verdict=verdict) if verdict else "")
             + (_("; load {load}").format(load=v["load_id"]) if v.get("load_id") else ""))


def _n(x: Any) -> str:
    return "" if x is None else f"{x:,}"
