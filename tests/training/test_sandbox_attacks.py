"""The trainer's sandbox and the custom-model export's hold against the same attacks as a job's.

Both are launched by :func:`sandbox.training.service.run_sandboxed` with the trainer's limits.
In the export, the attack is the user's ``model.py``: the platform's export entry imports it
after torch, as it would any model module. In the trainer's sandbox the attack stands in for the
entry (the trainer's own code is the platform's; what matters is what that sandbox lets through).
The attack (``tests/sandbox_attacks.py``) tries the network, host files, the supervisor's session
keyring, forbidden system calls, host paths in mountinfo and the like, and a process that
outlives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")

import sandbox_attacks  # noqa: E402

from sandbox.isolation.procs import processes_of_uid  # noqa: E402
from sandbox.isolation.runner import SandboxOutcome, check_sandbox_available  # noqa: E402
from sandbox.settings import Settings  # noqa: E402
from sandbox.training.service import model_export_folder, run_sandboxed, sandbox_limits  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[dict]:
    """A warehouse-like home with raw data in it, host listeners and a secret in the supervisor's keyring."""
    check_sandbox_available()
    home = tmp_path / "wh"
    files = [home / "tables" / "government" / "tax" / "part-0.parquet", home / "catalog.db",
             home / "incoming" / "tax.csv"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"raw rows")
    job_dir = home / "jobs" / "job_0123456789abcdef"
    (job_dir / "code").mkdir(parents=True)
    with sandbox_attacks.supervisor_key() as key, sandbox_attacks.host_listeners(tmp_path) as listeners:
        yield {"home": home, "files": files, "job_dir": job_dir, "key": key, "listeners": listeners,
               "settings": Settings(home=home)}


def _targets(t: dict, folder: Path) -> None:
    import sys

    sandbox_attacks.write_targets(folder, listeners=t["listeners"], files=t["files"], key=t["key"], needles={
        "home": str(t["home"]), "job": t["job_dir"].name, "checkout": str(REPO), "venv": sys.prefix})


def _check(result, t: dict) -> dict:
    report = sandbox_attacks.attack_report(result.stdout)
    sandbox_attacks.check_attack(report, t["files"])
    assert processes_of_uid(report["uid"]) == []  # the process meant to outlive it is dead
    assert t["key"][1] not in result.stdout + result.stderr
    return report


def test_the_custom_model_export_holds(target: dict) -> None:
    code = target["job_dir"] / "code"
    (code / "model.py").write_text(sandbox_attacks.ATTACK)  # runs when the export imports the model
    _targets(target, code)
    folder = target["job_dir"] / "model-export"
    model_export_folder(code, folder, {"module": "model.py", "builder": "build", "n_numeric": 2, "cardinalities": []})
    result = run_sandboxed(folder, "twh_export.py", target["job_dir"] / "model_export-run",
                           sandbox_limits(target["settings"], (".json", ".safetensors")), 1)
    _check(result, target)
    # and the export went on to refuse the module (no `build`), as it would any broken model
    assert result.outcome is SandboxOutcome.SUCCEEDED and [o.name for o in result.outputs] == ["error.json"]
    assert not (target["job_dir"] / "model_export-run").exists()


def test_the_trainer_sandbox_holds(target: dict) -> None:
    folder = target["job_dir"] / "trainer"
    folder.mkdir()
    (folder / "attack.py").write_text("import torch\n" + sandbox_attacks.ATTACK)  # with torch's threads loaded
    _targets(target, folder)
    result = run_sandboxed(folder, "attack.py", target["job_dir"] / "trainer-run",
                           sandbox_limits(target["settings"], (".json", ".safetensors")), 2)
    _check(result, target)
    assert result.outcome is SandboxOutcome.SUCCEEDED
