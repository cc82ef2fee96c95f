"""The project's shape is a checked contract, not a hope."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_leaf_libraries_never_import_the_application():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 2 kept, 0 broken" in r.stdout


def test_top_level_layout():
    for name in ("pyproject.toml", "sandbox", "connectors", "policies", "dp", "notebooks", "tests", "README.md",
                 "bench", "Makefile", "ARCHITECTURE.md", ".ci/run"):
        assert (ROOT / name).exists(), name


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("##")[0]
    assert "make demo" in head and "make test" in head
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_public_api_of_the_application_is_pinned():
    import sandbox

    assert sorted(sandbox.__all__) == ["Client", "LocalClient", "Settings", "Warehouse"]


def test_error_codes_are_unique_and_round_trip():
    from sandbox import errors

    codes = [c.code for c in errors.ERRORS_BY_CODE.values()]
    assert len(codes) == len(set(codes))
    for code, cls in errors.ERRORS_BY_CODE.items():
        again = errors.from_dict(cls("m", details={"x": 1}).to_dict())
        assert type(again) is cls and again.details == {"x": 1}
