"""``twh dataset …``, ``twh ingest`` and ``twh budget show``: what a steward lands and what anyone may read about it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ...errors import InvalidInput
from ...i18n import N_, _, fmt_eps, fmt_number
from .output import ctx, emit, err, out, row, run, say, show, table
from .views import grade_word, list_datasets, render_datasets

dataset_app = typer.Typer(rich_markup_mode=None, help=N_("Register and inspect datasets."), no_args_is_help=True)
budget_app = typer.Typer(rich_markup_mode=None, help=N_("Differential-privacy budgets."), no_args_is_help=True)


#: top-level commands of this module (``twh ingest``)
top = typer.Typer(rich_markup_mode=None)

@dataset_app.command("register", help=N_("Register a dataset from its manifest (schema, roles, expectations, "
                                         "policy)."))
def dataset_register(c: typer.Context, manifest: Path) -> None:
    data = run(lambda: ctx(c).client().register_dataset(manifest))
    emit(c, data, lambda d: say(_("registered {name} ({kind}, {grade}), stewards {stewards}").format(
        name=d["name"], kind=d["provider_kind"], grade=grade_word((d.get("classification") or {}).get("grade")),
        stewards=", ".join(d["stewards"]))))


@dataset_app.command("list", help=N_("List the catalog (with each dataset's grade)."))
def dataset_list(c: typer.Context,
                 grade: Annotated[str | None, typer.Option(help=N_("only this GB/T 43697 grade: core, important, "
                                                                   "general or unclassified"))] = None) -> None:
    emit(c, run(lambda: list_datasets(ctx(c), grade)), lambda rows: render_datasets(rows, grade))


@dataset_app.command("override", help=N_("Allow a dataset one thing beyond its grade (admins; audited). Record it "
                                         "before registering the manifest that needs it."))
def dataset_override(c: typer.Context, name: str,
                     allow: Annotated[str, typer.Option(help=N_("sdc | dp | no_approval | any_steward"))],
                     reason: Annotated[str, typer.Option(help=N_("why (recorded in the audit log)"))]) -> None:
    data = run(lambda: ctx(c).client().override_dataset(name, allow, reason))
    emit(c, data, lambda d: say(_("{name} may now: {allow} ({meaning}); recorded by {admin}").format(
        name=d["dataset"], allow=d["allow"], meaning=d.get("meaning", ""), admin=d["admin"])))


@dataset_app.command("show", help=N_("Show a dataset: schema with roles, policy, versions."))
def dataset_show(c: typer.Context, name: str) -> None:
    def render(d: dict[str, Any]) -> None:
        col = _("column")
        t = table(col, _("type"), _("role"), _("grade"), _("personal information"),
                  title=_("{name} (version {version})").format(name=d["name"], version=d["current_version"]),
                  whole=(col,))
        cls = d.get("classification") or {}
        for c_ in d["schema"]:
            pi = {"personal": _("personal"), "sensitive": _("sensitive")}.get(c_.get("pi") or "none", "")
            row(t, c_["name"], c_["type"], c_["role"], grade_word(c_.get("grade") or cls.get("grade")), pi)
        show(t)
        say(_("classification: {grade}, category {category}").format(
            grade=grade_word(cls.get("grade")), category=cls.get("category") or "-")
            + (_("; senior stewards {names}").format(names=", ".join(cls["senior_stewards"]))
               if cls.get("senior_stewards") else ""))
        for o in d.get("overrides") or []:
            say(_("  allowance {allow} by {admin}: {reason}").format(**o))
        say(_("policy: {policy}").format(policy=json.dumps(d["policy"], ensure_ascii=False)))
        for v in d["versions"]:
            say(_("  v{version}: {rows} rows, load {load}").format(version=v["version"], rows=fmt_number(v["rows"]),
                                                                     load=v["load_id"]))
    emit(c, run(lambda: ctx(c).client().show_dataset(name)), render)


@budget_app.command("show", help=N_("A dataset's DP budget: total, spent and remaining per scope, and every charge."))
def budget_show(c: typer.Context, dataset: str) -> None:
    def render(d: dict[str, Any]) -> None:
        rb = d.get("release_budget")
        if rb:  # sdc: distinct populations released (linear reconstruction needs many)
            used = ", ".join(f"{t} {n}" for t, n in sorted(rb["used"].items())) or _("none")
            say(_("release budget ({period}): {limit} distinct populations per tenant; used: {used}").format(
                period=rb["period"], limit=fmt_number(rb["per_tenant_limit"]), used=used))
        if d["budget"] is None:
            say(_("{name} has no DP budget (release mode sdc)").format(name=d["dataset"]))
            return
        t = table(_("scope"), _("period"), _("total ε"), _("spent ε"), _("remaining ε"), _("spent δ"),
                  title=_("{name} budget").format(name=d["dataset"]))
        for sc in d["scopes"]:
            row(t, sc["scope"], sc["period"], fmt_eps(sc["total"]["epsilon"]), fmt_eps(sc["spent"]["epsilon"]),
                fmt_eps(sc["remaining"]["epsilon"]), sc["spent"]["delta"])
        show(t)
        if d["history"] is None:  # an enterprise: totals only, never one charge
            say(_("charges: totals only (jobs under review are not counted until a steward acts)"))
            return
        say(_("charges: {n}").format(n=len(d["history"])))
        for r in d["history"]:  # one line each: the job id stays whole at any width
            say(f"  #{r['id']} {str(r['at'])[:19].replace('T', ' ')} {r['kind']} ε {r['epsilon']} δ {r['delta']} "
                + _("by {actor} ({tenant})").format(actor=r["actor"], tenant=r["tenant"])
                + (f" job {r['job_id']}" if r.get("job_id") else ""))
    emit(c, run(lambda: ctx(c).client().budget(dataset)), render)


@top.command(help=N_("Land data into a dataset (CSV, Excel, Parquet, JSON lines, SQL, HTTP, OHLC): "
                     "validated, atomic, idempotent."))
def ingest(c: typer.Context, dataset: str,
           file: Annotated[Path | None, typer.Argument(help=N_("a file; omit to re-run the manifest's source: block"))]
           = None,
           encoding: Annotated[str | None, typer.Option(help=N_("CSV encoding, e.g. gbk"))] = None,
           mode: Annotated[str | None, typer.Option(help=N_("append|overwrite|merge|incremental (default: manifest)"))]
           = None,
           kind: Annotated[str | None, typer.Option(help=N_("connector kind of FILE (default: from its suffix)"))]
           = None,
           engine: Annotated[str | None, typer.Option(help=N_("spark: land a big CSV/Parquet file with Spark + "
                                                          "delta-spark (default: TWH_ENGINE)"))] = None) -> None:
    from .progress import ingest_with_progress

    if engine is not None:
        if engine not in ("duckdb", "spark"):
            raise typer.BadParameter(_("--engine is duckdb or spark"))
        if ctx(c).url:
            raise typer.BadParameter(_("--engine applies to local mode; a service lands with its own TWH_ENGINE"))
        ctx(c).engine = engine
    from ..client import existing_file

    if file is not None:
        run(lambda: existing_file(file))  # before the progress bar: a missing file is not a load
    # in this process even with a local server: the file is read where it lies (no upload, no size
    # cap, the progress bar), and a manifest's source: paths mean what they mean here
    data = run(lambda: ingest_with_progress(ctx(c).client(in_process=True), dataset, file, encoding=encoding, mode=mode, kind=kind,
                                            console=err.rich(), show=not (ctx(c).as_json or ctx(c).get)))
    emit(c, data, lambda d: say(_("{status}: {dataset} version {version} ({rows} rows").format(
        status=d["status"], dataset=dataset, version=d.get("version"), rows=fmt_number(d.get("rows")))
        + (_(", {n} quarantined").format(n=fmt_number(d["rows_quarantined"])) if d.get("rows_quarantined") else "")
        + ")" + (_(", load {load}").format(load=d["load_id"]) if d.get("load_id") else "")))


@dataset_app.command("history", help=N_("Every version of a dataset with its lineage: source, connector, load, "
                                        "rows, validation."))
def dataset_history(c: typer.Context, name: str) -> None:
    from .progress import render_history

    emit(c, run(lambda: ctx(c).client().dataset_history(name)), lambda d: render_history(out.rich(), d))


@dataset_app.command("migrate", help=N_("Approve a new schema (steward): rewrite the table into NEW_MANIFEST's "
                                        "schema, audited."))
def dataset_migrate(c: typer.Context, name: str, manifest: Path,
                    rename: Annotated[list[str] | None, typer.Option(help=N_("OLD=NEW column rename (repeatable)"))]
                    = None) -> None:
    def go() -> Any:
        renames = {}
        for r in rename or []:
            old, sep, new = r.partition("=")
            if not sep or not old or not new:
                raise InvalidInput(_("--rename {value!r}: use OLD=NEW").format(value=r))
            renames[old] = new
        return ctx(c).client().migrate_dataset(name, manifest, renames)
    emit(c, run(go), lambda d: say(_("migrated {dataset} to version {version} ({rows} rows): ").format(
        dataset=d["dataset"], version=d["version"], rows=fmt_number(d["rows"]))
        + ", ".join(f"{k} {v}" for k, v in d["diff"].items() if v and k != "kept")))


@dataset_app.command("mock", help=N_("A schema-identical mock table (no real values) for developing jobs locally."))
def dataset_mock(c: typer.Context, name: str,
                 rows: Annotated[int, typer.Option(help=N_("how many mock rows"))] = 1000,
                 seed: Annotated[int, typer.Option(help=N_("random seed (same seed, same bytes)"))] = 0,
                 out_file: Annotated[Path | None, typer.Option("--out", help=N_("FILE.csv or FILE.parquet"))]
                 = None) -> None:
    fmt = "parquet" if out_file is not None and out_file.suffix.lower() in (".parquet", ".pq") else "csv"
    data = run(lambda: ctx(c).client().mock_dataset(name, rows=rows, seed=seed, fmt=fmt))
    if out_file is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(data)
    emit(c, {"file": str(out_file), "rows": rows, "format": fmt},
         lambda d: say(_("wrote {rows} mock rows to {file}").format(rows=fmt_number(d["rows"]), file=d["file"])))


@dataset_app.command("synthetic", help=N_("The dataset's DP synthetic table (real shape of the distributions; the "
                                          "first request spends the policy's dp.synthetic epsilon, later ones are "
                                          "free)."))
def dataset_synthetic(c: typer.Context, name: str,
                      out_file: Annotated[Path | None, typer.Option("--out", help=N_("FILE.parquet or FILE.csv"))]
                      = None,
                      purpose: Annotated[str | None, typer.Option(help=N_("what it is for (enterprises: one of the "
                                                                          "policy's purposes)"))] = None) -> None:
    fmt = "csv" if out_file is None or out_file.suffix.lower() == ".csv" else "parquet"
    data = run(lambda: ctx(c).client().synthetic_dataset(name, fmt=fmt, purpose=purpose))
    if out_file is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_bytes(data)
    emit(c, {"file": str(out_file), "format": fmt, "bytes": len(data)},
         lambda d: say(_("wrote the synthetic table of {name} to {file}").format(name=name, file=d["file"])))
