"""`make demo` end to end: the credit scenario runs, explains itself, and leaves a verifiable record."""

from __future__ import annotations

import csv
import io

from rich.console import Console

from sandbox.demo.scenario import run_demo


def test_the_demo_runs_end_to_end(tmp_path):
    out = io.StringIO()
    result = run_demo(tmp_path / "demo", console=Console(file=out, width=120))
    text = out.getvalue()
    for step in range(1, 7):
        assert f"step {step}" in text
    assert "quarantined, nothing committed" in text
    assert "refused" in text  # the job's SELECT * was refused by the gate
    assert result["audit"]["ok"] and result["audit"]["records"] > 20
    rows = list(csv.reader(io.StringIO(open(result["download"][0]).read())))
    assert rows[0][:2] == ["industry", "district"]
    # 7 industries x 7 districts exist; small or dominated cells were suppressed, the rest released
    assert 1 < len(rows) - 1 < 49
