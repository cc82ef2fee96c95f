"""Every bad input of THREATS.md §7 holds through Ingest.ingest: a clear error, nothing committed."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import register

from sandbox.context import get_dataset
from sandbox.errors import InvalidInput, ValidationFailed
from sandbox.tables.staged import STAGE_PREFIX
from sandbox.tables.uris import to_path

H = b"code,day,price\n"
CASES = {
    "nul_byte": (H + b"001,2024-01-01,1\x00\n", "NUL byte"),
    "ragged_row": (H + b"001,2024-01-01,1\n002,2024-01-01\n", "fields; the header has 3"),
    "wrong_encoding": (H + "001,2024-01-01,1\n北京,2024-01-01,2\n".encode("gbk"), "not valid utf-8"),
    "big_field": (H + b"001,2024-01-01," + b"9" * (10 << 20) + b"\n", "field"),
    "nan": (H + b"001,2024-01-01,NaN\n", "finite"),
    "inf": (H + b"001,2024-01-01,1e400\n", "NaN or infinite"),
    "thousands": (H + b'001,2024-01-01,"1,234"\n', "finite decimal number"),
    "duplicate_header": (b"code,day,day,price\n001,2024-01-01,2024-01-01,1\n", "duplicate column name"),
    "empty_header": (b"code,,day,price\n001,x,2024-01-01,1\n", "empty column name"),
    "bad_quote": (H + b'001,2024-01-01,"1\n', "'price'"),
    "contract": (H + b"001,2024-01-01,-5\n", "expect_column_values_to_be_between"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_quarantined_with_nothing_committed(wh, people, tmp_path: Path, case: str) -> None:
    data, match = CASES[case]
    name = register(wh, people)
    f = tmp_path / "in.csv"
    f.write_bytes(data)
    with pytest.raises((ValidationFailed, InvalidInput), match=match):
        wh.ingest.ingest(people["bank_steward"], name, f)
    shown = wh.datasets.show(people["bank_steward"], name)
    assert shown["current_version"] == 0 and shown["versions"] == []
    with wh.db.read() as s:  # and no staged parts are left behind (sandbox.tables.staged)
        folder = to_path(get_dataset(s, name).table_path)
    assert [p.name for p in folder.iterdir() if p.name.startswith(STAGE_PREFIX)] == []
    assert len(wh.dataset_history(people["bank_steward"], name)["versions"]) == 1  # only the empty table


def test_good_edge_cases_land_as_text(wh, people, tmp_path: Path) -> None:
    """BOM, quoted newlines, leading zeros and formula-looking cells are values, kept exactly."""
    name = register(wh, people)
    f = tmp_path / "ok.csv"
    f.write_bytes(b'\xef\xbb\xbfcode,day,price\n"=1+2",2024-01-01,1\n"00\n7",2024-01-02,2\n@x,2024-01-03,3\n')
    assert wh.ingest.ingest(people["bank_steward"], name, f)["rows"] == 3
    from ingest_helpers import table_rows

    assert sorted(r["code"] for r in table_rows(wh, name)) == ["00\n7", "=1+2", "@x"]
