from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_consoles() -> Iterator[None]:
    """rich's console, once made, keeps the COLUMNS it was made under: tests here change COLUMNS,
    so the next test (in this process) gets a console made afresh."""
    yield
    from sandbox.interfaces.cli import output

    for console in (output.out, output.err):
        object.__setattr__(console, "_real", None)
