"""The README runs as written.

Every fenced ``bash`` block of README.md marked ``<!-- readme: run -->`` is taken from the README
itself (there is no second copy of the commands), and the blocks run in order, in one bash session
with ``set -euo pipefail``, in an empty directory, against a warehouse the README creates: the
walk-through in local mode, then the same warehouse behind ``twh serve`` with the tokens it kept.
``twh`` is this environment's (the virtualenv's ``bin`` first on ``PATH``); the terminal is 80
columns wide, as a new user's might be.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- readme: run -->"
#: the sections whose blocks run; a marker dropped or moved shows here
EXECUTED = ["Using it", "As a service", "Models and verification as products (推理 · 核验)",
            "Landing data: connectors, load modes, lineage, migrations, mock data"]


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(section heading, code) of each marked block, in order. A marker must sit right above a
    ```bash fence: anything else is a mistake in the README, not a block to skip."""
    blocks: list[tuple[str, str]] = []
    lines = text.splitlines()
    section, fence, i = "", False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            section = line.lstrip("#").strip()
        elif not fence and line.strip() == MARK:
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j == len(lines) or lines[j].strip() != "```bash":
                raise AssertionError(f"README line {i + 1}: {MARK} is not followed by a ```bash block")
            end = next(k for k in range(j + 1, len(lines)) if lines[k].startswith("```"))
            blocks.append((section, "\n".join(lines[j + 1:end])))
            i = end
        i += 1
    return blocks


def test_the_marked_blocks_are_found_in_their_sections():
    blocks = readme_blocks((ROOT / "README.md").read_text("utf-8"))
    assert list(dict.fromkeys(s for s, _ in blocks)) == EXECUTED
    code = "\n".join(c for _, c in blocks)
    for needed in ("twh init", "user add bank_steward", "user add auditor", "twh demo data",
                   "dataset register sample/manifests/bank_loans.yaml", "ingest tax_payments",
                   '--as bank_steward export approve', "twh serve", "export download", "export verify",
                   "export key", "--grade important", "--lang zh-CN"):
        assert needed in code, needed
    with pytest.raises(AssertionError, match="not followed by"):
        readme_blocks(f"# x\n{MARK}\n```python\nprint(1)\n```\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(400)
def test_the_readme_runs_as_written(tmp_path):
    # (no catalog_url: the README builds its own SQLite warehouse, so the PostgreSQL pass leaves this out)
    blocks = readme_blocks((ROOT / "README.md").read_text("utf-8"))
    script = "set -euo pipefail\nPS4='+ README: '\nset -x\n" + "\n".join(
        f"# --- README, {section} ---\n{code}" for section, code in blocks)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWH_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", COLUMNS="80",
               PORT=str(_free_port()))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    work = tmp_path / "fresh"
    work.mkdir()
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=360)
    finally:  # `twh serve &` must not outlive a failed run
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # nor the home's local server (the README runs local mode as users get it: TWH_LOCAL_SERVER=auto)
        for record in work.rglob(".local-server/server.json"):
            try:
                os.kill(json.loads(record.read_text())["pid"], signal.SIGTERM)
            except (OSError, ValueError, KeyError):
                pass
    assert proc.returncode == 0, output[-6000:]
    assert "Traceback" not in output, output[-6000:]
    # what the walk-through says happens, happened: local, remote and on mock data
    for folder in ("out", "out-remote", "mock/out"):
        (csv,) = (work / folder).glob("*.csv")
        assert csv.read_text().startswith("industry,district,loans,default_rate"), folder
    assert len((work / "audit.jsonl").read_text().splitlines()) > 20
    assert re.search(r"job job_[0-9a-f]{16}: awaiting_review", output)  # `job submit`, read by a person
    assert "audit chain OK" in output and "tax_payments budget" in output
    assert output.count("export exp_") >= 4  # both stewards' approvals, local and remote, print the export
