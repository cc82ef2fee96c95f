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
from ...i18n import N_, _
from .output import ctx, emit, row, run, say, show, table

authorize_app = typer.Typer(
    rich_markup_mode=None, help=N_("Subjects' authorisations: grant, import, revoke, list."), no_args_is_help=True)
IMPORT_COLUMNS = ("subject", "tenant", "purpose", "datasets", "valid_until", "consent_sha256")


def _line(a: dict[str, Any]) -> str:
    return _("{id}  {subject} → {tenant} for {purpose} on {datasets} until {until}  [{state}]").format(
        id=a["id"], subject=a["subject"], tenant=a["tenant"], purpose=a["purpose"], datasets=", ".join(a["datasets"]),
        until=a["valid_until"][:10], state=a["state"])


def _consent(consent: Path | None, sha: str | None) -> str:
    from ..client_products import consent_sha256

    if (consent is None) == (sha is None):
        raise InvalidInput(_("give the consent document (--consent FILE) or its SHA-256 (--consent-sha256), one of "
                             "them"), details={"field": "consent"})
    if consent is not None:
        if not consent.is_file():
            raise InvalidInput(_("{path} does not exist or is not a file").format(path=consent),
                               details={"field": "consent"})
        return consent_sha256(consent)
    return str(sha)


@authorize_app.command("grant", help=N_("SUBJECT authorises TENANT to use DATASETS for PURPOSE until a date."))
def authorize_grant(c: typer.Context, subject: str,
                    tenant: Annotated[str, typer.Option(help=N_("the tenant authorised"))],
                    purpose: Annotated[str, typer.Option(help=N_("the one purpose authorised"))],
                    datasets: Annotated[str, typer.Option(help=N_("datasets it may use, comma-separated"))],
                    until: Annotated[str, typer.Option(help=N_("last day (YYYY-MM-DD) or an ISO time"))],
                    consent: Annotated[Path | None, typer.Option(help=N_("the signed consent document (hashed "
                                                                         "here)"))] = None,
                    consent_sha256: Annotated[str | None, typer.Option(help=N_("or its SHA-256"))] = None,
                    since: Annotated[str | None, typer.Option(help=N_("first day (default: now)"))] = None) -> None:
    def go() -> dict[str, Any]:
        digest = _consent(consent, consent_sha256)
        return ctx(c).client().authorize(subject, tenant, purpose, [d.strip() for d in datasets.split(",") if d.strip()],
                                         until, digest, since)
    emit(c, run(go), lambda a: say(_("registered {line}").format(line=_line(a))))


@authorize_app.command("import", help=N_("A steward's bulk import from CSV (columns: subject, tenant, purpose, "
                                         "datasets (separated by ;), valid_until, consent_sha256; optional "
                                         "valid_from): all rows or none, one audit record."))
def authorize_import(c: typer.Context, file: Path) -> None:
    def go() -> dict[str, Any]:
        if not file.is_file():
            raise InvalidInput(_("{path} does not exist or is not a file").format(path=file), details={"field": "file"})
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [k for k in IMPORT_COLUMNS if k not in (reader.fieldnames or [])]
            if missing:
                raise InvalidInput(_("{path}: missing column(s) {columns}").format(
                    path=file, columns=", ".join(missing)), details={"field": "file"})
            rows = [{**{k: r[k] for k in IMPORT_COLUMNS}, "datasets": [d for d in r["datasets"].split(";") if d],
                     **({"valid_from": r["valid_from"]} if r.get("valid_from") else {})} for r in reader]
        return ctx(c).client().import_authorisations(rows)
    emit(c, run(go), lambda d: say(_("imported {n} authorisations ({id}), rows sha256 {sha}").format(
        n=d["count"], id=d["import_id"], sha=d["rows_sha256"])))


@authorize_app.command("revoke", help=N_("Revoke an authorisation (the subject, or a steward of a dataset it names)."))
def authorize_revoke(c: typer.Context, auth_id: str) -> None:
    emit(c, run(lambda: ctx(c).client().revoke_authorisation(auth_id)),
         lambda a: say(_("revoked {line}").format(line=_line(a))))


@authorize_app.command("list", help=N_("Authorisations you may see (a subject its own, a tenant those it received, "
                                       "a steward its datasets')."))
def authorize_list(c: typer.Context, subject: Annotated[str | None, typer.Option(help=N_("one subject's"))] = None,
                   tenant: Annotated[str | None, typer.Option(help=N_("one tenant's"))] = None,
                   active: Annotated[bool, typer.Option(help=N_("only those in force now"))] = False) -> None:
    def render(rows: list[dict[str, Any]]) -> None:
        whole = (_("id"), _("subject"), _("state"))
        t = table(whole[0], whole[1], _("tenant"), _("purpose"), _("datasets"), _("until"), whole[2], whole=whole)
        for a in rows:
            row(t, a["id"], a["subject"], a["tenant"], a["purpose"], ", ".join(a["datasets"]), a["valid_until"][:10],
                a["state"])
        show(t)
        if not rows:
            say(_("no authorisations"))
    emit(c, run(lambda: ctx(c).client().list_authorisations(subject=subject, tenant=tenant, active=active)), render)


@authorize_app.command("show", help=N_("One authorisation."))
def authorize_show(c: typer.Context, auth_id: str) -> None:
    emit(c, run(lambda: ctx(c).client().get_authorisation(auth_id)), lambda a: say(_line(a)))
