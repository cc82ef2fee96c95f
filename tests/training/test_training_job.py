"""A training job end to end, through both sandboxes: the user's model exported on mock data in
the job's sandbox, the platform's trainer in its own, ε reserved first, certified weights out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from sandbox.demo.scenario import JOBS, build_warehouse  # noqa: E402

HERE = Path(__file__).parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from sandbox.isolation.runner import check_sandbox_available

    check_sandbox_available()
    wh, clients = build_warehouse(tmp_path_factory.mktemp("train") / "wh", n_enterprises=500, say=lambda *a: None)
    yield wh, clients
    wh.close()


def _job(tmp_path: Path, **train: object) -> Path:
    import yaml

    job = tmp_path / "job"
    shutil.copytree(JOBS / "train_default", job)
    spec = yaml.safe_load((job / "job.yaml").read_text())
    spec["train"].update(train)
    (job / "job.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(HERE / "models_zoo.py", job / "model.py")
    return job


def test_custom_model_is_trained_certified_and_released_for_review(demo, tmp_path: Path) -> None:
    wh, c = demo
    job = c["analyst"].submit_job(_job(tmp_path, epochs=1, batch_size=64, privacy={"epsilon": 1, "delta": 1e-8},
                                       model={"kind": "custom", "module": "model.py"}))
    assert job["state"] == "awaiting_review"  # the submitter's one state until the stewards act
    job = c["bank_steward"].get_job(job["id"])
    assert job["state"] == "awaiting_approval", job["reason"]
    files = {f["name"]: f["data"] for f in c["bank_steward"].preview_export(job["export"]["id"])}
    # besides the job's own CSV outputs, the export holds the weights and the card only: no attack
    # report, no exact counts, no training loss
    assert {n for n in files if not n.endswith(".csv")} == {"model.safetensors", "model_card.json", "model_card.png"}
    card = json.loads(files["model_card.json"])
    text = files["model_card.json"].decode()
    for leak in ("membership_inference", "epoch_losses", "training_rows", "privacy_unit_rows", "samples_per_second"):
        assert leak not in text
    assert card["holdout_loss_curve_dp"]["loss"] and card["holdout_rows_dp"] is not None
    # the stewards see the attack and the exact numbers with the job's logs; the enterprise does not
    review = json.loads(c["bank_steward"].job_logs(job["id"])["training_review"])
    assert "auc" in review["membership_inference"] and review["data"]["training_rows"] > 0
    with pytest.raises(Exception):
        c["analyst"].job_logs(job["id"])
    assert card["privacy"]["epsilon"] <= 1.0 and card["privacy"]["cross_check"]["epsilon"] >= card["privacy"]["epsilon"]
    assert card["hashes"]["graph_sha256"] and card["data"]["versions"]
    assert files["model_card.png"].startswith(b"\x89PNG")
    from dp.training.weights import read_safetensors

    assert set(read_safetensors(files["model.safetensors"])) == set(card["model"]["weights"])
    # the ledger was charged on every dataset read, before the trainer ran
    for ds in ("bank_loans", "tax_payments", "enterprise_registry", "social_insurance"):
        assert [h["kind"] for h in c["admin"].budget(ds)["history"] if h["job_id"] == job["id"]] == ["training"]
    actions = [r["action"] for r in c["auditor"].audit_records(limit=1000) if r.get("object_id") in (job["id"],)
               or r["action"] == "budget.reserved"]
    assert actions.index("budget.reserved") < actions.index("training.trainer_ran")
    # the analyst sees no content before approval
    assert c["analyst"].get_job(job["id"])["queries"] is None


def test_a_batchnorm_model_is_refused_in_the_sandbox_with_its_reason(demo, tmp_path: Path) -> None:
    wh, c = demo
    path = _job(tmp_path, model={"kind": "custom", "module": "model.py", "builder": "bn"})
    (path / "model.py").write_text((path / "model.py").read_text() + "\n\ndef bn(n, cards):\n    return UsesBatchNorm(n)\n")
    job = c["analyst"].submit_job(path)
    assert job["state"] == "awaiting_review" and "BatchNorm" not in job["reason"]
    seen = c["bank_steward"].get_job(job["id"])
    assert seen["state"] == "failed" and "BatchNorm" in seen["reason"]
    assert seen["export"]["kind"] == "notice"  # the reason reaches the submitter only if the stewards approve it


def test_a_trainer_killed_mid_training_keeps_the_charge_and_releases_nothing(demo, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.isolation.runner import SandboxLimits
    from sandbox.training import service as training

    wh, c = demo
    real = training.Training._limits
    monkeypatch.setattr(training.Training, "_limits",
                        lambda self, outputs: SandboxLimits(**{**real(self, outputs).__dict__, "wall_seconds": 2}))
    job = c["analyst"].submit_job(_job(tmp_path, privacy={"epsilon": 0.5, "delta": 1e-8}))
    assert job["state"] == "awaiting_review" and job["export"] is None
    seen = c["bank_steward"].get_job(job["id"])
    assert seen["state"] == "failed" and "stays spent" in seen["reason"] and seen["export"]["kind"] == "notice"
    assert [h["kind"] for h in c["admin"].budget("bank_loans")["history"] if h["job_id"] == job["id"]] == ["training"]


def _with_undeclared_column(tmp_path: Path) -> Path:
    """train_default whose feature query also selects avg_rate, declared nowhere in train:."""
    import yaml

    job = _job(tmp_path, epochs=1, batch_size=64, privacy={"epsilon": 1, "delta": 1e-8})
    spec = yaml.safe_load((job / "job.yaml").read_text())
    spec["train"]["features"] = spec["train"]["features"].replace(
        "AVG(l.amount) AS avg_loan,", "AVG(l.amount) AS avg_loan, AVG(l.rate) AS avg_rate,")
    assert "avg_rate" in spec["train"]["features"]
    (job / "job.yaml").write_text(yaml.safe_dump(spec))
    return job


def _charges(c: dict, job_id: str | None = None) -> list:
    return [h for ds in ("bank_loans", "tax_payments", "enterprise_registry", "social_insurance")
            for h in c["admin"].budget(ds)["history"] if job_id is None or h["job_id"] == job_id]


def test_a_feature_query_selecting_an_undeclared_column_is_refused_at_submit_naming_it(demo, tmp_path: Path) -> None:
    from sandbox.errors import TrainingRefused

    wh, c = demo
    jobs, charges = len(c["admin"].list_jobs()), len(_charges(c))
    with pytest.raises(TrainingRefused, match="selects avg_rate, not declared in train:") as err:
        c["analyst"].submit_job(_with_undeclared_column(tmp_path))
    assert err.value.details["columns"] == ["avg_rate"]
    assert len(c["admin"].list_jobs()) == jobs and len(_charges(c)) == charges  # no job, no ε


def test_the_trainer_refuses_an_undeclared_column_before_it_reserves_epsilon(demo, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's own check, behind the submit one: with the submit check switched off, the job
    runs, and the training step refuses before any ε is reserved."""
    from sandbox.training import service as training

    wh, c = demo
    real = training.feature_plan
    monkeypatch.setattr(training, "feature_plan", lambda *_a, **_k: None)  # the submit check, switched off
    job = c["analyst"].submit_job(_with_undeclared_column(tmp_path), wait=False)
    monkeypatch.setattr(training, "feature_plan", real)
    wh.jobs.run(job["id"])
    seen = c["bank_steward"].get_job(job["id"])
    assert seen["state"] == "failed" and "selects avg_rate, not declared" in seen["reason"], seen["reason"]
    assert seen["export"]["kind"] == "notice" and _charges(c, job["id"]) == []
    actions = [r["action"] for r in c["auditor"].audit_records(object_id=job["id"], limit=100)]
    assert "training.planned" not in actions and "training.trainer_ran" not in actions
