"""The model page's checks: a card is shown as the platform's only when it matches the bundle; the
stewards' training review (attack, exact counts) is read beside it, never from the export."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest

from sandbox.interfaces.web import plots
from sandbox.interfaces.web.files import show_file
from sandbox.interfaces.web.modelcard import read_model_card
from sandbox.jobs.spec import parse_job_spec
from sandbox.training.service import REVIEW_FILE
from tests.interfaces.web.trained import StandInTraining, training_job

JOB = "job_0123456789abcdef"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[dict[str, bytes], str]:
    root = tmp_path_factory.mktemp("card")
    spec = parse_job_spec((training_job(root) / "job.yaml").read_bytes())
    files = StandInTraining(lambda _job: root).run(SimpleNamespace(tenant="bank_a"), JOB, spec,
                                                  {"bank_loans": SimpleNamespace(version=3)})
    return {f.name: f.data for f in files}, (root / REVIEW_FILE).read_text()


@pytest.fixture(scope="module")
def bundle(trained) -> dict[str, bytes]:
    return trained[0]


def _read(raw: dict[str, bytes], job: str = JOB, review: str | None = None):
    return read_model_card(job, [show_file(n, d) for n, d in raw.items()], raw, review)


def test_the_export_holds_the_weights_and_the_card_only(trained):
    bundle, review = trained
    assert sorted(bundle) == ["model.safetensors", "model_card.json", "model_card.png"]
    card = json.loads(bundle["model_card.json"])
    assert "training" not in card and "membership_inference" not in card
    for leak in ("membership_inference", "epoch_losses_train", "training_rows", "privacy_unit_rows"):
        assert f'"{leak}"' not in json.dumps(card), leak
    assert "auc" in json.loads(review)["membership_inference"]


def test_the_trainers_card_is_verified_and_its_curves_are_drawn(trained):
    bundle, review = trained
    mc = _read(bundle, review=review)
    assert mc.verified and not mc.problems and not mc.review_problems
    assert mc.privacy["steps"] == 2 and mc.attack["flagged"] is True  # the stand-in's members are memorised
    assert mc.exact_data["training_rows"] == 160 and mc.training["epoch_losses_train"] == [0.69, 0.61]
    assert mc.loss_curve["epochs"] == [1] and mc.card["holdout_rows_dp"] == mc.holdout["n_noisy"]
    assert mc.png_uri.startswith("data:image/png;base64,")
    fig = plots.model_card_figure(mc.card, mc.attack)
    loss, cal, roc = fig.axes
    assert len(loss.lines[0].get_xdata()) == 1 and len(roc.lines[0].get_xdata()) == len(mc.attack["roc"])
    assert cal.collections  # the calibration scatter
    assert plots.to_svg(plots.model_card_figure({})).startswith("<?xml")  # an empty card: empty panels, no error
    assert plots.to_svg(plots.model_card_figure({}, {})).startswith("<?xml")


def test_without_the_review_there_is_no_attack_and_no_attack_panel(bundle):
    mc = _read(bundle)  # what the submitting tenant's page reads: the export only
    assert mc.verified and mc.review is None and mc.attack == {} and mc.exact_data == {}
    assert len(plots.model_card_figure(mc.card).axes) == 2  # held-out loss and calibration only


def _with(bundle: dict[str, bytes], **changes: object) -> dict[str, bytes]:
    card = json.loads(bundle["model_card.json"])
    for path, value in changes.items():
        section, key = path.split("__")
        card[section][key] = value
    return {**bundle, "model_card.json": json.dumps(card).encode()}


@pytest.mark.parametrize("change,problem", [
    ({"hashes__weights_sha256": hashlib.sha256(b"other").hexdigest()}, "weights hash"),
    ({"job__id": "job_ffffffffffffffff"}, "another job"),
])
def test_a_card_that_does_not_match_the_bundle_is_not_verified(bundle, change, problem):
    mc = _read(_with(bundle, **change))
    assert not mc.verified and any(problem in p for p in mc.problems), mc.problems


def test_a_review_of_another_job_or_another_epsilon_is_flagged(trained):
    bundle, review = trained
    other = json.dumps({**json.loads(review), "job_id": "job_ffffffffffffffff"})
    assert any("another job" in p for p in _read(bundle, review=other).review_problems)
    mc = _read(_with(bundle, privacy__epsilon=0.5), review=review)
    assert any("certified ε" in p for p in mc.review_problems)
    assert _read(bundle, review="{not json").review is None


def test_a_card_written_by_the_job_itself_is_not_the_platforms(bundle):
    # a job may write any .json, but never .safetensors or .png: without the trainer's weights it is not a card
    forged = {"model_card.json": bundle["model_card.json"], "rates.csv": b"a\n1\n"}
    mc = _read(forged)
    assert not mc.verified and any("model.safetensors" in p for p in mc.problems)
    assert mc.png_uri is None
    assert not _read({"model_card.json": b"{not json"}).verified
    assert _read({"rates.csv": b"a\n1\n"}) is None  # not a training export at all
