"""``twh authorize grant|import|revoke|list|show``: the subjects' authorisations (授权).

A subject's own account (role ``subject``) or a steward of every dataset named registers one, with
the SHA-256 of the consent document (``--consent FILE`` hashes it here; the document itself never
leaves); a steward imports many from CSV; the subject or a steward revokes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from ...errors import InvalidInput
from .output import ctx, emit, out, row, run, say, table

authorize_app = typer.Typer(help="Subjects' authorisations: grant, import, revoke, list.", no_args_is_help=True)
IMPORT_COLUMNS = ("subject", "tenant", "purpose", "datasets", "valid_until", "consent_sha256")


def _line(a: dict[str, Any]) -> str:
    return (f"{a['id']}  {a['subject']} → {a['tenant']} for {a['purpose']} on {', '.join(a['datasets'])} until "
            f"{a['valid_until'][:10]}  [{a['state']}]")


def _consent(consent: Path | None, sha: str | None) -> str:
    from ..client_products import consent_sha256

    if (consent is None) == (sha is None):
        raise InvalidInput("give the consent document (--consent FILE) or its SHA-256 (--consent-sha256), one of them",
                           details={"field": "consent"})
    if consent is not None:
        if not consent.is_file():
            raise InvalidInput(f"{consent} does not exist or is not a file", details={"field": "consent"})
        return consent_sha256(consent)
    return str(sha)


@authorize_app.command("grant")
def authorize_grant(c: typer.Context, subject: str,
                    tenant: Annotated[str, typer.Option(help="the tenant authorised")],
                    purpose: Annotated[str, typer.Option(help="the one purpose authorised")],
                    datasets: Annotated[str, typer.Option(help="datasets it may use, comma-separated")],
                    until: Annotated[str, typer.Option(help="last day (YYYY-MM-DD) or an ISO time")],
                    consent: Annotated[Path | None, typer.Option(help="the signed consent document (hashed here)")]
                    = None,
                    consent_sha256: Annotated[str | None, typer.Option(help="or its SHA-256")] = None,
                    since: Annotated[str | None, typer.Option(help="first day (default: now)")] = None) -> None:
    """SUBJECT authorises TENANT to use DATASETS for PURPOSE until a date."""
    def go() -> dict[str, Any]:
        digest = _consent(consent, consent_sha256)
        return ctx(c).client().authorize(subject, tenant, purpose, [d.strip() for d in datasets.split(",") if d.strip()],
                                         until, digest, since)
    emit(c, run(go), lambda a: say("registered " + _line(a)))


@authorize_app.command("import")
def authorize_import(c: typer.Context, file: Path) -> None:
    """A steward's bulk import from CSV (columns: subject, tenant, purpose, datasets (separated by ;),
    valid_until, consent_sha256; optional valid_from): all rows or none, one audit record."""
    def go() -> dict[str, Any]:
        if not file.is_file():
            raise InvalidInput(f"{file} does not exist or is not a file", details={"field": "file"})
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [k for k in IMPORT_COLUMNS if k not in (reader.fieldnames or [])]
            if missing:
                raise InvalidInput(f"{file}: missing column(s) {', '.join(missing)}", details={"field": "file"})
            rows = [{**{k: r[k] for k in IMPORT_COLUMNS}, "datasets": [d for d in r["datasets"].split(";") if d],
                     **({"valid_from": r["valid_from"]} if r.get("valid_from") else {})} for r in reader]
        return ctx(c).client().import_authorisations(rows)
    emit(c, run(go), lambda d: say(f"imported {d['count']} authorisations ({d['import_id']}), rows sha256 "
                                   f"{d['rows_sha256']}"))


@authorize_app.command("revoke")
def authorize_revoke(c: typer.Context, auth_id: str) -> None:
    """Revoke an authorisation (the subject, or a steward of a dataset it names)."""
    emit(c, run(lambda: ctx(c).client().revoke_authorisation(auth_id)), lambda a: say("revoked " + _line(a)))


@authorize_app.command("list")
def authorize_list(c: typer.Context, subject: Annotated[str | None, typer.Option(help="one subject's")] = None,
                   tenant: Annotated[str | None, typer.Option(help="one tenant's")] = None,
                   active: Annotated[bool, typer.Option(help="only those in force now")] = False) -> None:
    """Authorisations you may see (a subject its own, a tenant those it received, a steward its datasets')."""
    def render(rows: list[dict[str, Any]]) -> None:
        t = table("id", "subject", "tenant", "purpose", "datasets", "until", "state",
                  whole=("id", "subject", "state"))
        for a in rows:
            row(t, a["id"], a["subject"], a["tenant"], a["purpose"], ", ".join(a["datasets"]), a["valid_until"][:10],
                a["state"])
        out.print(t)
        if not rows:
            say("no authorisations")
    emit(c, run(lambda: ctx(c).client().list_authorisations(subject=subject, tenant=tenant, active=active)), render)


@authorize_app.command("show")
def authorize_show(c: typer.Context, auth_id: str) -> None:
    """One authorisation."""
    emit(c, run(lambda: ctx(c).client().get_authorisation(auth_id)), lambda a: say(_line(a)))
