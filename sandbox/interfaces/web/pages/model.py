"""The model page of a training export: the model card (privacy guarantee, data versions, hashes,
DP held-out metrics and loss curve) with its curves, beside the bundle's own PNG; for stewards,
auditors and admins also the training review (membership-inference attack, exact counts,
training losses, timings), which is never part of the export.

Reviewers (stewards of a dataset the job read, auditors, admins) read the bytes under review
(:meth:`~sandbox.release.exports.Exports.preview`) and the job's training review (:meth:`~sandbox.jobs.service.Jobs.logs`);
the submitting tenant reads the card once approved, as a download (audited like any other), and
never the review. The card is checked against the bundle first (:mod:`.modelcard`): a card that
does not match is shown, but marked as not verified.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ....auth import Role
from ....errors import NotFound
from ....release.provenance import FILE_NAME as PROVENANCE
from .. import plots
from ..core import WH, HtmlRoute, Who, language, render
from ..files import reviewed_bundle, show_file
from ..modelcard import number, read_model_card

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
REVIEWERS = (Role.STEWARD, Role.AUDITOR, Role.ADMIN)


@router.get("/ui/exports/{export_id}/model")
def model_page(request: Request, export_id: str, viewer: Who, wh: WH) -> Response:
    who = viewer.principal
    e = wh.exports.get(who, export_id)
    reviewer = who.role in REVIEWERS
    if not reviewer and e["state"] != "approved":
        raise NotFound(f"export {export_id!r} has no model to show yet")  # the submitter waits for approval
    got = wh.exports.preview(who, export_id) if reviewer else wh.exports.download(who, export_id)
    got = [f for f in got if f.name != PROVENANCE]  # the signed statement is about the bundle, not in it
    files = [show_file(f.name, f.data) for f in got]
    # the training review (attack, exact counts) is steward/auditor-only: never read for the submitter
    review = wh.jobs.logs(who, e["job_id"]).get("training_review") if reviewer else None
    mc = read_model_card(e["job_id"], files, {f.name: f.data for f in got}, review)
    if mc is None:
        raise NotFound(f"export {export_id!r} holds no model card (not a training job)")
    attack = mc.attack if reviewer else None  # None: no attack panel at all
    lang = language(request, viewer)
    curves = plots.data_uri(plots.model_card_figure(mc.card, attack, lang=lang)) if mc.card else None
    return render(request, "model.html", viewer, lang=lang, e=e, mc=mc, curves=curves, num=number, reviewer=reviewer,
                  shown_bundle=reviewed_bundle(files), files=files)
