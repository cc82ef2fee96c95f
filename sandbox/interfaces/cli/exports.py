"""``twh export …``: review, approve or deny the exact bytes of an export, download it, and verify a
downloaded bundle's signed provenance offline (``twh export verify FOLDER --key key.pem``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ...errors import InvalidInput
from ...i18n import N_, _, fmt_number
from .output import ctx, emit, out, row, run, say, show, table

export_app = typer.Typer(rich_markup_mode=None, help=N_("Review, approve, deny, download and verify exports."),
                         no_args_is_help=True)

def _waiting(d: dict[str, Any]) -> list[str]:
    decided = {a["dataset"] for a in d.get("approvals") or []}
    return [n for n in d.get("needs_approval_from") or [] if n not in decided]


def _render_export(d: dict[str, Any]) -> None:
    """One export for people, in every state; the submitter's view before approval has no files
    and no bundle hash (``None``: withheld, they could carry unapproved results)."""
    say(_("export {id}: {state}").format(id=d["id"], state=d["state"]))
    say(_("  job {job}, tenant {tenant}").format(job=d["job_id"], tenant=d.get("tenant")))
    if d.get("bundle_sha256"):
        say(_("  bundle sha256 {sha}").format(sha=d["bundle_sha256"]))
    files = d.get("files")
    if files is None:
        say(_("  files: withheld from the submitter until every steward approves"))
    for f in files or []:
        say(_("  file {name}  {size} bytes  sha256 {sha}").format(name=f["name"], size=fmt_number(f["size"]),
                                                                  sha=f["sha256"]))
    for a in d.get("approvals") or []:
        say(_("  {dataset}: {decision} by {steward}: {reason}").format(**a))
    waiting = _waiting(d)
    if d["state"] == "pending" and waiting:
        say(_("  waiting for a steward of: {datasets}").format(datasets=", ".join(waiting)))
    for ds, seniors in sorted((d.get("seniors_decide") or {}).items()):
        say(_("  {dataset} is important data: only its senior stewards decide ({names})").format(
            dataset=ds, names=", ".join(seniors) or "-"))
    if d.get("provenance_sha256"):
        say(_("  signed provenance sha256 {sha} (twh export verify FOLDER)").format(sha=d["provenance_sha256"]))


@export_app.command("list", help=N_("List exports (stewards: those awaiting you)."))
def export_list(c: typer.Context, state: Annotated[str | None, typer.Option(help=N_("pending|approved|denied"))] = None,
                wait: Annotated[float, typer.Option(help=N_("wait up to SECONDS for at least one export (a steward "
                                                        "waiting for a worker to finish a job)"))] = 0) -> None:
    def listed() -> Any:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            rows = ctx(c).client().list_exports(state)
            if rows or time.monotonic() >= deadline:
                return rows
            time.sleep(0.5)

    def render(rows: list[dict[str, Any]]) -> None:
        cols = (_("id"), _("state"), _("job"))
        t = table(*cols, _("waiting for"), whole=cols)
        for e in rows:
            row(t, e["id"], e["state"], e["job_id"], ", ".join(_waiting(e)) if e["state"] == "pending" else "")
        show(t)
        if not rows:
            say(_("no exports") + (_(" in state {state}").format(state=state) if state else ""))
    emit(c, run(listed), render)


@export_app.command("show", help=N_("Show an export; with --content, the exact files under review."))
def export_show(c: typer.Context, export_id: str,
                content: Annotated[bool, typer.Option(help=N_("print the files' exact bytes (stewards); binary "
                                                              "files as size, SHA-256 and tensor table"))]
                = False) -> None:
    def go() -> Any:
        d = ctx(c).client().get_export(export_id)
        if content:
            from ..web.files import describe_binary, is_binary

            d["content"] = {f["name"]: describe_binary(f["name"], f["data"]) if is_binary(f["name"], f["data"])
                            else f["data"].decode("utf-8") for f in ctx(c).client().preview_export(export_id)}
        return d

    def render(d: dict[str, Any]) -> None:
        _render_export(d)
        for name, body in d.get("content", {}).items():
            if isinstance(body, str):
                say(f"--- {name} ---\n{body}")
                continue
            say(_("--- {name} (binary, not shown as text: {size} bytes, sha256 {sha}) ---").format(
                name=name, size=fmt_number(body["size"]), sha=body["sha256"]))
            if body.get("problem"):
                say(f"  {body['problem']}")
            if body.get("tensors"):
                cols = (_("tensor"), "dtype")
                t = table(*cols, _("shape"), whole=cols)
                for x in body["tensors"]:
                    row(t, x["name"], x["dtype"], " x ".join(map(str, x["shape"])) or _("scalar"))
                show(t)
            for k, v in sorted((body.get("metadata") or {}).items()):
                say(_("  metadata {key} = {value}").format(key=k, value=v))
    emit(c, run(go), render)


def _decide(c: typer.Context, export_id: str, decision: str, reason: str, sha256: str | None) -> None:
    data = run(lambda: ctx(c).client().decide_export(export_id, decision, reason, sha256))
    emit(c, data, _render_export)


@export_app.command("approve", help=N_("Approve the exact bytes of an export (bound to their SHA-256)."))
def export_approve(c: typer.Context, export_id: str, reason: str = typer.Option(..., help=N_("why")),
                   sha256: Annotated[str | None, typer.Option(help=N_("bundle hash you reviewed"))] = None) -> None:
    _decide(c, export_id, "approve", reason, sha256)


@export_app.command("deny", help=N_("Deny an export, with a reason."))
def export_deny(c: typer.Context, export_id: str, reason: str = typer.Option(..., help=N_("why")),
                sha256: Annotated[str | None, typer.Option(help=N_("bundle hash you reviewed"))] = None) -> None:
    _decide(c, export_id, "deny", reason, sha256)


@export_app.command("download", help=N_("Download an approved export (enterprise of the job's tenant)."))
def export_download(c: typer.Context, export_id: str,
                    to: Annotated[Path, typer.Option(help=N_("folder to write the files into"))] = Path(".")) -> None:
    paths = run(lambda: ctx(c).client().download_export(export_id, to))
    emit(c, [str(p) for p in paths], lambda d: [say(_("wrote {path}").format(path=p)) for p in d])


def _public_key(c: typer.Context, key: Path | None, url: str | None) -> bytes:
    """The warehouse's public key: a PEM file (offline), a service's endpoint, or this invocation's
    warehouse (local or remote mode)."""
    if key is not None:
        try:
            return key.read_bytes()
        except OSError as exc:
            raise InvalidInput(_("--key {path}: cannot read it ({why})").format(path=key, why=exc.strerror),
                               details={"field": "key"}) from exc
    if url is not None:
        import httpx

        from ...errors import from_dict

        try:
            r = httpx.get(url.rstrip("/") + "/v1/provenance/key", timeout=30)
        except httpx.HTTPError as exc:
            raise InvalidInput(_("--url {url}: no answer ({why})").format(url=url, why=type(exc).__name__),
                               details={"field": "url"}) from exc
        if r.status_code != 200:
            raise from_dict((r.json() or {}).get("error") or {"code": "internal_error", "message": r.text[:200]})
        return str(r.json()["public_key_pem"]).encode("ascii")
    return str(ctx(c).client().provenance_key()["public_key_pem"]).encode("ascii")


@export_app.command("key", help=N_("The public key this warehouse signs every release's provenance with (also GET "
                                   "/v1/provenance/key)."))
def export_key(c: typer.Context,
               out_file: Annotated[Path | None, typer.Option("--out", help=N_("write the PEM to this file"))]
               = None) -> None:
    def go() -> Any:
        info = ctx(c).client().provenance_key()
        if out_file is not None:
            out_file.write_text(info["public_key_pem"], encoding="ascii")
        return info
    emit(c, run(go), lambda d: say(_("provenance signing key ({alg}), keyid {keyid}:").format(
        alg=d["algorithm"], keyid=d["keyid"]) + "\n" + d["public_key_pem"].rstrip()
        + (("\n" + _("written to {path}").format(path=out_file)) if out_file is not None else "")))


@export_app.command("verify", help=N_("Check a downloaded export offline: the provenance signature, that the "
                                      "statement lists exactly the folder's files, and every file's SHA-256. Exit 1"
                                      " if anything differs."))
def export_verify(c: typer.Context, bundle: Annotated[Path, typer.Argument(help=N_("the folder `twh export download` "
                                                                                  "wrote"))],
                  key: Annotated[Path | None, typer.Option(help=N_("the warehouse's public key (PEM), e.g. from "
                                                                   "`twh export key --out`: checks fully offline"))]
                  = None,
                  url: Annotated[str | None, typer.Option(help=N_("fetch the public key from this service"))]
                  = None) -> None:
    from ...release.provenance import verify_bundle

    result = run(lambda: verify_bundle(bundle, _public_key(c, key, url)))

    def render(d: dict[str, Any]) -> None:
        if d["ok"]:
            job, exp = d.get("job") or {}, d.get("export") or {}
            say(_("provenance OK: {n} file(s) match the statement signed by key {keyid}").format(
                n=len(d["files"]), keyid=d["keyid"][:16]))
            say(_("  export {export}, job {job} (code sha256 {code})").format(
                export=exp.get("id"), job=job.get("id"), code=job.get("code_sha256")))
            for ds in d.get("datasets") or []:
                say(_("  read {name} v{version} ({grade}, {mode})").format(
                    name=ds.get("name"), version=ds.get("delta_version"), grade=ds.get("grade"),
                    mode=ds.get("release_mode")))
            eps = (d.get("privacy") or {}).get("epsilon_spent_total")
            if eps and eps != "0":
                say(_("  ε spent: {eps}").format(eps=eps))
            for a in d.get("approvals") or []:
                say(_("  approved by {steward} for {dataset} at {at}").format(**a))
        else:
            from rich.markup import escape

            out.print("[bold red]" + escape(_("provenance FAILED")) + "[/]", highlight=False)
            for p in d["problems"]:
                say(f"  {p}")
    emit(c, result.to_dict(), render)
    if not result.ok:
        raise typer.Exit(1)
