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
from .output import ctx, emit, out, row, run, say, table

score_app = typer.Typer(help="Score subjects with a catalog model (inference).", no_args_is_help=True)


def _typed(model: dict[str, Any], name: str, value: str) -> Any:
    """A tenant input as the model declares it: text for a categorical input, else a number."""
    cats = {f["name"] for f in ((model.get("card") or {}).get("model") or {}).get("features", {}).get(
        "categorical") or []}
    if name in cats:
        return value
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"--input {name}: {value!r} is not a number", details={"field": "input"}) from None


def inputs_for(c: typer.Context, ref: str, subjects: list[str], given: list[str] | None,
               rows: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, Any]] | None:
    if not given and not rows:
        return None
    model = ctx(c).client().show_model(ref)
    common: dict[str, Any] = {}
    for item in given or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"--input {item!r}: NAME=VALUE", details={"field": "input"})
        common[name] = _typed(model, name, value)
    out_: dict[str, dict[str, Any]] = {}
    for s in subjects:
        own = {k: _typed(model, k, v) for k, v in (rows or {}).get(s, {}).items() if v != ""}
        out_[s] = {**common, **own}
    return out_


def render_scores(d: dict[str, Any]) -> None:
    say(f"{d['model']} for {d['purpose']} (run {d['run_id']}, versions {d.get('versions')})")
    t = table("subject", "status", "score", "reasons / why", whole=("subject", "status"))
    for r in d["results"]:
        row(t, r["subject"], r["status"], r.get("score", ""), ", ".join(r.get("reasons") or []) or r.get("reason", ""))
    out.print(t)


@score_app.command("now")
def score_now(c: typer.Context, model: str, subjects: list[str],
              purpose: Annotated[str, typer.Option(help="what the scores are for")],
              input_: Annotated[list[str] | None, typer.Option("--input", help="a tenant input NAME=VALUE, for every "
                                                                               "subject")] = None) -> None:
    """Score SUBJECTS with MODEL (name@version) now."""
    data = run(lambda: ctx(c).client().score(model, subjects, purpose, inputs_for(c, model, subjects, input_)))
    emit(c, data, render_scores)


@score_app.command("batch")
def score_batch(c: typer.Context, model: str, file: Path,
                purpose: Annotated[str, typer.Option(help="what the scores are for")],
                input_: Annotated[list[str] | None, typer.Option("--input", help="a tenant input NAME=VALUE, for "
                                                                                 "every subject")] = None) -> None:
    """Score the subjects of FILE (CSV with a subject column, and a column per tenant input) as a job."""
    def go() -> dict[str, Any]:
        if not file.is_file():
            raise InvalidInput(f"{file} does not exist or is not a file", details={"field": "file"})
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "subject" not in (reader.fieldnames or []):
                raise InvalidInput(f"{file}: no subject column", details={"field": "file"})
            rows = {r["subject"]: {k: v for k, v in r.items() if k != "subject"} for r in reader}
        subjects = list(rows)
        extra = rows if any(rows.values()) else None
        return ctx(c).client().score_batch(model, subjects, purpose, inputs_for(c, model, subjects, input_, extra))
    emit(c, run(go), lambda j: say(f"job {j['id']} ({j['name']}) → {j['state']}; its export scores.csv downloads "
                                   "with `twh export download` once released"))
