"""``twh score now|batch``: scores of a catalog model for subjects who authorised your tenant.

``now`` answers at once (a decision flow, up to 100 subjects); ``batch`` runs a job whose export
(``scores.csv``) the stewards review where the policies say so. A subject without a valid
authorisation comes back refused, "not authorised". A model's tenant inputs (your own columns)
come from ``--input NAME=VALUE`` (the same for every subject) or a CSV with a ``subject`` column.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from ...errors import InvalidInput
from ...i18n import N_, _
from .output import ctx, emit, row, run, say, show, table

score_app = typer.Typer(
    rich_markup_mode=None, help=N_("Score subjects with a catalog model (inference)."), no_args_is_help=True)


def _typed(model: dict[str, Any], name: str, value: str) -> Any:
    """A tenant input as the model declares it: text for a categorical input, else a number."""
    cats = {f["name"] for f in ((model.get("card") or {}).get("model") or {}).get("features", {}).get(
        "categorical") or []}
    if name in cats:
        return value
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(_("--input {name}: {value!r} is not a number").format(name=name, value=value),
                           details={"field": "input"}) from None


def inputs_for(c: typer.Context, ref: str, subjects: list[str], given: list[str] | None,
               rows: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, Any]] | None:
    if not given and not rows:
        return None
    model = ctx(c).client().show_model(ref)
    common: dict[str, Any] = {}
    for item in given or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(_("--input {item!r}: NAME=VALUE").format(item=item), details={"field": "input"})
        common[name] = _typed(model, name, value)
    out_: dict[str, dict[str, Any]] = {}
    for s in subjects:
        own = {k: _typed(model, k, v) for k, v in (rows or {}).get(s, {}).items() if v != ""}
        out_[s] = {**common, **own}
    return out_


def render_scores(d: dict[str, Any]) -> None:
    say(_("{model} for {purpose} (run {run}, versions {versions})").format(
        model=d["model"], purpose=d["purpose"], run=d["run_id"], versions=d.get("versions")))
    whole = (_("subject"), _("status"))
    t = table(*whole, _("score"), _("reasons / why"), whole=whole)
    for r in d["results"]:
        row(t, r["subject"], r["status"], r.get("score", ""), ", ".join(r.get("reasons") or []) or r.get("reason", ""))
    show(t)


@score_app.command("now", help=N_("Score SUBJECTS with MODEL (name@version) now."))
def score_now(c: typer.Context, model: str, subjects: list[str],
              purpose: Annotated[str, typer.Option(help=N_("what the scores are for"))],
              input_: Annotated[list[str] | None, typer.Option("--input", help=N_("a tenant input NAME=VALUE, for "
                                                                                  "every subject"))] = None) -> None:
    data = run(lambda: ctx(c).client().score(model, subjects, purpose, inputs_for(c, model, subjects, input_)))
    emit(c, data, render_scores)


@score_app.command("batch", help=N_("Score the subjects of FILE (CSV with a subject column, and a column per tenant "
                                     "input) as a job."))
def score_batch(c: typer.Context, model: str, file: Path,
                purpose: Annotated[str, typer.Option(help=N_("what the scores are for"))],
                input_: Annotated[list[str] | None, typer.Option("--input", help=N_("a tenant input NAME=VALUE, for "
                                                                                    "every subject"))] = None) -> None:
    def go() -> dict[str, Any]:
        if not file.is_file():
            raise InvalidInput(_("{path} does not exist or is not a file").format(path=file), details={"field": "file"})
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "subject" not in (reader.fieldnames or []):
                raise InvalidInput(_("{path}: no subject column").format(path=file), details={"field": "file"})
            rows = {r["subject"]: {k: v for k, v in r.items() if k != "subject"} for r in reader}
        subjects = list(rows)
        extra = rows if any(rows.values()) else None
        return ctx(c).client().score_batch(model, subjects, purpose, inputs_for(c, model, subjects, input_, extra))
    emit(c, run(go), lambda j: say(_("job {id} ({name}) → {state}; its export scores.csv downloads with `twh export "
                                     "download` once released").format(id=j["id"], name=j["name"], state=j["state"])))
