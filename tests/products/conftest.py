"""One warehouse with the products in place for this package's tests (built once: see tests/product_site.py).

Tests share it: each takes its own slice of the registry's firms (``codes``) so that authorisations,
distinct-claims limits and quotas of one test never touch another's."""

from __future__ import annotations

import pytest
from product_site import build_site


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    s = build_site(tmp_path_factory.mktemp("products"), n_enterprises=700)
    yield s
    s["wh"].close()


@pytest.fixture
def codes(site, request):
    """Firms reserved for one test: 12 consecutive registry codes per test, by test name."""
    taken = site.setdefault("_taken", {})
    start = taken.setdefault(request.node.nodeid, 12 * len(taken))
    got = site["codes"][start:start + 12]
    assert len(got) == 12, "the products site ran out of firms: build it with more enterprises"
    return got
