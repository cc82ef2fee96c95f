"""The catalog records table locations as file:// URIs, and every reader resolves them."""

from __future__ import annotations

from sandbox.tables import uris


def test_the_catalog_records_table_locations_as_uris(landed):
    from sandbox.catalog.db import Dataset

    with landed.db.read() as s:
        locations = [d.table_path for d in s.query(Dataset).all()]
    assert locations and all(loc.startswith("file:///") for loc in locations)
    assert all(uris.to_path(loc).is_dir() for loc in locations)
