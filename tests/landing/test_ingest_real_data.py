"""Real public data that ships inside PyPI packages lands through the connectors, each with its contract.

* US macroeconomic statistics 1959–2009 (``statsmodels.datasets.macrodata``: BEA/BLS/Fed series),
  a government statistics table, landed from its CSV file as shipped;
* CBOE VIX daily OHLC bars (``vega_datasets``' ``ohlc.json``), a market price series, landed
  through the ``ohlc`` connector from JSON lines (the package ships one JSON array; it is split
  into lines unchanged, field for field).
No network: both files are inside installed packages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.datasets.manifest import parse_manifest

statsmodels = pytest.importorskip("statsmodels")
vega_datasets = pytest.importorskip("vega_datasets")

MACRO_CSV = Path(statsmodels.__file__).parent / "datasets" / "macrodata" / "macrodata.csv"
VIX_JSON = Path(vega_datasets.__file__).parent / "_data" / "ohlc.json"

_MEASURES = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "tbilrate", "unemp", "pop",
             "infl", "realint"]
MACRO = {
    "name": "us_macro", "provider_kind": "government", "title": "US macroeconomic data 1959Q1-2009Q3",
    "stewards": ["tax_steward"],
    "schema": [{"name": "year", "type": "int32", "role": "dimension", "nullable": False, "min": 1959, "max": 2009},
               {"name": "quarter", "type": "int32", "role": "dimension", "nullable": False, "min": 1, "max": 4},
               *[{"name": m, "type": "float64", "role": "measure"} for m in _MEASURES]],
    "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "year", "min_value": 1959,
                                                                  "max_value": 2009}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "quarter", "value_set": [1, 2, 3, 4]}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "unemp", "min_value": 0,
                                                                  "max_value": 100}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "realgdp", "min_value": 0}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["year", "quarter"]}},
    ],
    "policy": {"tenants": ["bank_a"], "purposes": ["credit_risk"], "output": {"min_group_size": 3}},
    "source": {"kind": "csv", "path": str(MACRO_CSV)},
}
VIX = {
    "name": "vix_daily", "provider_kind": "market", "title": "CBOE VIX daily bars, 2009", "stewards": ["bank_steward"],
    "schema": [{"name": "date", "type": "date", "role": "dimension", "nullable": False},
               *[{"name": c, "type": "float64", "role": "measure", "nullable": False}
                 for c in ("open", "high", "low", "close")],
               {"name": "signal", "type": "string", "role": "dimension", "categories": ["short", "long", "hold", "neutral"]},
               {"name": "ret", "type": "float64", "role": "measure"}],
    "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "low", "min_value": 0}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "signal",
                                                                 "value_set": ["short", "long", "hold", "neutral"]}},
    ],
    "policy": {"tenants": ["bank_a"], "purposes": ["credit_risk"], "output": {"min_group_size": 3}},
    "source": {"kind": "ohlc", "path": "vix.jsonl",
               "options": {"via": "jsonl", "symbol": None, "time": "date", "volume": None}},
}


def test_us_macro_statistics_land_from_the_manifest_source(wh, people) -> None:
    wh.datasets.register(people["tax_steward"], parse_manifest(MACRO))
    r = wh.ingest.ingest(people["tax_steward"], "us_macro")
    assert r["status"] == "committed" and r["rows"] == 203  # 1959Q1..2009Q3
    v = wh.dataset_history(people["auditor"], "us_macro")["versions"][-1]
    assert v["validation"]["success"] and v["validation"]["checks"] == 5 and v["source"]["path"] == str(MACRO_CSV)
    assert wh.ingest.ingest(people["tax_steward"], "us_macro")["status"] == "already_loaded"


def test_vix_ohlc_bars_land_and_a_broken_bar_is_refused(wh, people, tmp_path: Path) -> None:
    bars = json.loads(VIX_JSON.read_text())
    good = tmp_path / "vix.jsonl"
    good.write_text("".join(json.dumps(b) + "\n" for b in bars))
    wh.datasets.register(people["bank_steward"], parse_manifest(VIX))
    r = wh.ingest.ingest(people["bank_steward"], "vix_daily", good)
    assert r["rows"] == len(bars) == 44
    assert wh.dataset_history(people["bank_steward"], "vix_daily")["versions"][-1]["connector"] == "ohlc+jsonl"
    # the same series with one bar's high below its close (a vendor error) commits nothing
    broken = [dict(b) for b in bars]
    broken[10]["high"] = broken[10]["close"] - 1
    bad = tmp_path / "vix_bad.jsonl"
    bad.write_text("".join(json.dumps(b) + "\n" for b in broken))
    from sandbox.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match=r"close outside \[low, high\] \(data row 11\)"):
        wh.ingest.ingest(people["bank_steward"], "vix_daily", bad)
    assert wh.datasets.show(people["bank_steward"], "vix_daily")["current_version"] == r["version"]
