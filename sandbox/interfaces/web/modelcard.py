"""A training export's model card, checked against the bundle, and the stewards' training review.

The platform's trainer adds three files to a training job's export (``sandbox/training/service.py``):
``model.safetensors`` (re-serialised by trusted code), ``model_card.json`` and ``model_card.png``.
The card carries DP numbers only (certificate, held-out metrics and loss curve, noisy held-out
count). A job's own code can write ``.json`` files too, so a file *named* ``model_card.json``
proves nothing: the page presents a card as the platform's only when it is in the card format,
names this job, and its ``weights_sha256`` is the hash of the export's ``model.safetensors`` (a
suffix no job may write). Anything else is shown as not verified.

The membership-inference attack report, exact row counts, training losses and timings are not in
the export: the trainer leaves them in ``training_review.json`` in the job's folder, which only
stewards, auditors and admins read (:meth:`sandbox.jobs.service.Jobs.logs`). The page shows them to those
roles only, never to the submitting tenant.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .files import ShownFile

CARD_FORMAT = "twh-model-card/1"  # dp.training.card.CARD_FORMAT (not imported: it would load the trainer's deps)
TRAINER_FILES = ("model.safetensors", "model_card.json", "model_card.png")
MAX_PNG = 2 * 1024 * 1024


@dataclass(frozen=True)
class ModelCard:
    card: dict[str, Any]
    verified: bool
    problems: list[str] = field(default_factory=list)
    png_uri: str | None = None
    #: the stewards' ``training_review.json``; None when this viewer may not see it (or there is none)
    review: dict[str, Any] | None = None
    review_problems: list[str] = field(default_factory=list)

    @property
    def privacy(self) -> dict[str, Any]:
        return _dict(self.card.get("privacy"))

    @property
    def holdout(self) -> dict[str, Any]:
        return _dict(self.card.get("holdout_metrics_dp"))

    @property
    def loss_curve(self) -> dict[str, Any]:
        return _dict(self.card.get("holdout_loss_curve_dp"))

    @property
    def attack(self) -> dict[str, Any]:
        return _dict(_dict(self.review).get("membership_inference"))

    @property
    def sacroml(self) -> dict[str, Any]:
        return _dict(self.attack.get("sacroml"))

    @property
    def training(self) -> dict[str, Any]:
        return _dict(_dict(self.review).get("training"))

    @property
    def exact_data(self) -> dict[str, Any]:
        return _dict(_dict(self.review).get("data"))


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def is_training_export(files: list[ShownFile]) -> bool:
    return any(f.name == "model_card.json" for f in files) and any(f.name == "model.safetensors" for f in files)


def read_review(job_id: str, text: str | None, card: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The job's ``training_review.json`` (from :meth:`sandbox.jobs.service.Jobs.logs`), checked against the card."""
    if not text:
        return None, []
    try:
        review = json.loads(text)
    except (ValueError, RecursionError):
        return None, ["training_review.json does not parse as JSON"]
    if not isinstance(review, dict):
        return None, ["training_review.json is not an object"]
    problems = []
    if review.get("job_id") != job_id:
        problems.append("the training review names another job")
    eps = _dict(card.get("privacy")).get("epsilon")
    if eps is not None and review.get("certified_epsilon") != eps:
        problems.append("the training review's certified ε is not the card's")
    return review, problems


def read_model_card(job_id: str, files: list[ShownFile], raw: dict[str, bytes],
                    review: str | None = None) -> ModelCard | None:
    """The card of this export, checked against the bundle; None when the export has no card at all.

    ``review`` is the job's ``training_review`` text from the job logs — pass it only for a viewer
    allowed to read them (stewards, auditors, admins)."""
    by_name = {f.name: f for f in files}
    if "model_card.json" not in raw:
        return None
    problems: list[str] = []
    try:
        card = json.loads(raw["model_card.json"])
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ModelCard({}, False, ["model_card.json does not parse as JSON"])
    if not isinstance(card, dict):
        return ModelCard({}, False, ["model_card.json is not an object"])
    if card.get("format") != CARD_FORMAT:
        problems.append(f"model_card.json is not in the platform's format ({CARD_FORMAT})")
    if _dict(card.get("job")).get("id") != job_id:
        problems.append("the card names another job")
    weights = by_name.get("model.safetensors")
    if weights is None:
        problems.append("the export has no model.safetensors (only the platform's trainer writes one)")
    elif _dict(card.get("hashes")).get("weights_sha256") != weights.sha256:
        problems.append("the card's weights hash is not the hash of the exported model.safetensors")
    png = raw.get("model_card.png", b"")
    png_uri = ("data:image/png;base64," + base64.b64encode(png).decode()
               if png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) <= MAX_PNG else None)
    got, review_problems = read_review(job_id, review, card)
    return ModelCard(card, not problems, problems, png_uri, got, review_problems)


def number(v: Any, digits: int = 4) -> str:
    """A metric for people: 4 significant digits, "—" when missing or not finite."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "—"
    return f"{v:.{digits}g}"
