"""The demo data: valid credit codes, a realistic scenario with signal, manifests that load, and
files that land through the real connector, contract and Delta path."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from connectors import ColumnSpec, Contract, arrow_schema, get_source
from sandbox.datasets.manifest import load_manifest
from sandbox.demo.generate import (
    DISTRICTS,
    INDUSTRIES,
    PERIODS,
    generate,
    make_uscc,
    org_code_check_digit,
    uscc_check_char,
    validate_uscc,
    write_bad_batch,
)
from sandbox.tables import storage

MANIFESTS = Path(__file__).resolve().parents[2] / "sandbox" / "demo" / "manifests"
NAMES = ["enterprise_registry", "tax_payments", "social_insurance", "bank_loans"]

# Published codes of well-known enterprises (both check characters verified independently):
# the GB 32100 sample code, Huawei Technologies Co., Ltd. and Shenzhen Tencent Computer Systems.
REAL_CODES = ["91350100M000100Y43", "914403001922038216", "91440300708461136T"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def frames(files: dict[str, Path]) -> dict[str, pd.DataFrame]:
    return {k: pd.read_csv(p, dtype={"uscc": str, "district": str, "loan_id": str}) for k, p in files.items()}


# --- credit codes ---


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_codes_validate(code: str) -> None:
    assert validate_uscc(code)
    assert uscc_check_char(code[:17]) == code[17] and org_code_check_digit(code[8:16]) == code[16]


@pytest.mark.parametrize("code", REAL_CODES)
def test_every_single_character_change_is_caught(code: str) -> None:
    from sandbox.demo.generate import USCC_CHARSET

    # 31 is prime and every weight is invertible mod 31: any single substitution changes the check
    for pos in range(18):
        for ch in USCC_CHARSET:
            if ch != code[pos]:
                mutated = code[:pos] + ch + code[pos + 1:]
                assert not validate_uscc(mutated, check_org_code=False), mutated


def test_transpositions_and_malformed_codes_are_refused() -> None:
    code = REAL_CODES[0]
    swaps = [code[:i] + code[i + 1] + code[i] + code[i + 2:] for i in range(17) if code[i] != code[i + 1]]
    assert not any(validate_uscc(s) for s in swaps)
    for bad in [code.lower(), code[:17], code + "0", "91350100I000100Y43", "9135010OM000100Y43", None, 913501]:
        assert not validate_uscc(bad)


def test_org_code_check_digit_follows_gb_11714() -> None:
    # the GB 11714 standard's worked example: D2143569 -> check digit X
    assert org_code_check_digit("D2143569") == "X"
    assert org_code_check_digit("MA000000") in "0123456789X"
    with pytest.raises(ValueError):
        org_code_check_digit("1234567")
    code = make_uscc("500112", "MA5U0000")
    assert code.startswith("91500112MA5U0000") and validate_uscc(code)


# --- generated data ---


def test_generation_is_fast_and_deterministic(tmp_path: Path) -> None:
    t = time.perf_counter()
    a = generate(tmp_path / "a")
    assert time.perf_counter() - t < 3.0
    b = generate(tmp_path / "b")
    c = generate(tmp_path / "c", seed=8)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert all(digest(a[k]) == digest(b[k]) for k in NAMES)
    assert digest(a["bank_loans"]) != digest(c["bank_loans"])
    assert sorted(a) == sorted(NAMES)


def test_registry_codes_and_categories(frames: dict[str, pd.DataFrame]) -> None:
    reg = frames["enterprise_registry"]
    assert len(reg) == 2000 and reg["uscc"].is_unique
    assert reg["uscc"].map(validate_uscc).all()
    assert (reg["uscc"].str[2:8] == reg["district"]).all()  # the code embeds the district
    assert set(reg["district"]) == set(DISTRICTS) and set(reg["industry"]) == set(INDUSTRIES)
    assert (reg["registered_capital"] > 0).all()
    assert reg["registration_date"].between("2000-01-01", "2023-12-31").all()


def test_monthly_tables_cover_24_months_from_registration(frames: dict[str, pd.DataFrame]) -> None:
    tax, social, reg = frames["tax_payments"], frames["social_insurance"], frames["enterprise_registry"]
    assert set(tax["period"]) == set(PERIODS) and len(PERIODS) == 24
    assert len(tax) > 40_000 and not tax.duplicated(["uscc", "period"]).any()
    assert (tax[["vat_paid", "income_tax_paid"]] >= 0).all().all()
    assert set(tax["uscc"]) <= set(reg["uscc"]) and set(social["uscc"]) <= set(reg["uscc"])
    quarter_months = tax["period"].str[5:].isin(["01", "04", "07", "10"])
    assert (tax.loc[~quarter_months, "income_tax_paid"] == 0).all()
    assert (social["headcount"] >= 0).all() and social["headcount"].dtype == np.int64


def test_loans_have_a_real_signal(frames: dict[str, pd.DataFrame]) -> None:
    loans, tax, reg = frames["bank_loans"], frames["tax_payments"], frames["enterprise_registry"]
    assert loans["loan_id"].is_unique and set(loans["defaulted"]) == {0, 1}
    assert 0.04 < loans["defaulted"].mean() < 0.2
    assert set(loans["term_months"]) <= {3, 6, 12, 24, 36, 60}
    # firms that pay little tax and skip months default more: the government data has signal
    per_firm = tax.groupby("uscc").agg(vat=("vat_paid", "mean"), zero=("vat_paid", lambda v: (v == 0).mean()))
    joined = loans.merge(per_firm, left_on="uscc", right_index=True)
    low = joined["vat"] <= joined["vat"].quantile(0.25)
    high = joined["vat"] >= joined["vat"].quantile(0.75)
    assert joined.loc[low, "defaulted"].mean() > 2 * joined.loc[high, "defaulted"].mean()
    assert joined.loc[joined["zero"] > 0.2, "defaulted"].mean() > joined.loc[joined["zero"] == 0, "defaulted"].mean()
    # and default rates differ by industry
    by_industry = loans.merge(reg, on="uscc").groupby("industry")["defaulted"].mean()
    assert by_industry.max() > 2 * by_industry.min()


def test_some_industry_district_cells_are_small(frames: dict[str, pd.DataFrame]) -> None:
    borrowers = frames["bank_loans"].merge(frames["enterprise_registry"], on="uscc")
    firms = borrowers.groupby(["industry", "district"])["uscc"].nunique()
    assert (firms < 10).sum() >= 3, "the demo needs suppressed cells"
    assert (firms >= 10).sum() >= 25, "and mostly released ones"


# --- manifests ---


def test_manifests_load_and_declare_the_scenario() -> None:
    stewards = {"enterprise_registry": ["tax_steward"], "tax_payments": ["tax_steward", "tax_chief"],
                "social_insurance": ["hrss_steward"], "bank_loans": ["bank_steward"]}
    # GB/T 43697: the tax records are important data, approved by the bureau's senior steward
    grades = {"enterprise_registry": "general", "tax_payments": "important", "social_insurance": "general",
              "bank_loans": "general"}
    assert sorted(p.stem for p in MANIFESTS.glob("*.yaml")) == sorted(NAMES)
    for name in NAMES:
        m = load_manifest(MANIFESTS / f"{name}.yaml")
        policy = m.build_policy()
        assert m.name == name and m.stewards == stewards[name] and m.grade.value == grades[name]
        assert m.senior_stewards == (["tax_chief"] if name == "tax_payments" else [])
        assert m.provider_kind.value == ("market" if name == "bank_loans" else "government")
        assert m.column("uscc").role.value == "join_key" and not m.column("uscc").nullable
        assert policy.privacy_unit == "uscc" and policy.purposes == ["credit_risk", "credit_decision"]
        assert policy.tenants == ["bank_a"]
        # scores and verifications for applicants who authorised the bank: the government's
        # consented datasets must be named in the authorisation; public registry data and the bank's
        # own loan book need not be
        assert policy.subject_results.allowed and policy.subject_results.authorisation_required == (
            name in ("tax_payments", "social_insurance"))
        assert policy.output.min_group_size == 10 and policy.output.require_approval
        assert m.expectations, name
    loans = load_manifest(MANIFESTS / "bank_loans.yaml")
    assert loans.column("loan_id").role.value == "identifier"
    assert loans.column("defaulted").role.value == "measure" and loans.column("defaulted").type == "int64"
    reg = load_manifest(MANIFESTS / "enterprise_registry.yaml")
    assert reg.column("industry").role.value == reg.column("district").role.value == "dimension"
    assert reg.column("district").type == "string"  # division codes are codes, not numbers


# --- end to end through the real landing path ---


def _specs(manifest) -> list[ColumnSpec]:
    return [ColumnSpec(c.name, c.type, c.nullable) for c in manifest.columns]


def test_files_land_through_connector_contract_and_delta(files: dict[str, Path], tmp_path: Path) -> None:
    for name in NAMES:
        m = load_manifest(MANIFESTS / f"{name}.yaml")
        contract = Contract(m.expectations, columns=[c.name for c in m.columns])
        table = storage.table_path(tmp_path, m.provider_kind.value, name)
        storage.create_table(table, arrow_schema(_specs(m)))
        stream = get_source("csv").open(files[name], _specs(m))
        offset = [0]

        def checked(stream=stream, contract=contract):
            for b in stream:
                report = contract.validate(b, row_offset=offset[0])
                assert report.success, report.to_text()
                offset[0] += b.num_rows
                yield b

        version = storage.append_batches(table, checked(), stream.schema,
                                         metadata={"twh.load_id": f"ld_{stream.sha256[:16]}",
                                                   "twh.source_sha256": stream.sha256})
        snap = storage.pin_snapshot(table, name)
        n = duckdb.sql(f"SELECT count(*) FROM read_parquet({list(snap.files)!r})").fetchall()[0][0]
        expected = sum(1 for _ in files[name].open(encoding="utf-8")) - 1
        assert version == 1 and n == expected == offset[0], name
    codes = duckdb.sql(f"SELECT uscc FROM read_parquet({list(snap.files)!r}) LIMIT 5").fetchall()
    assert all(validate_uscc(c[0]) for c in codes)


def test_the_bad_batch_passes_the_schema_but_fails_its_contract(tmp_path: Path) -> None:
    path = write_bad_batch(tmp_path)
    m = load_manifest(MANIFESTS / "tax_payments.yaml")
    with get_source("csv").open(path, _specs(m)) as stream:
        batches = list(stream)  # types are fine: the problems are in the values
    report = Contract(m.expectations).validate(batches[0])
    assert not report.success
    failed = {(o.type, o.column) for o in report.failures}
    assert failed == {("expect_column_values_to_be_between", "vat_paid"),
                      ("expect_column_values_to_match_regex", "uscc")}
