"""A small warehouse with two landed datasets, for the end-to-end tests."""

from __future__ import annotations

import csv
import random
import textwrap
from pathlib import Path

import pytest
import yaml

FIRMS = {
    "name": "firms",
    "provider_kind": "government",
    "stewards": ["tax_steward"],
    "schema": [
        {"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
        {"name": "industry", "type": "string", "role": "dimension", "categories": ["C", "F", "I"]},
        {"name": "district", "type": "string", "role": "dimension"},
        {"name": "capital", "type": "float64", "role": "measure", "min": 0, "max": 1e6},
    ],
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "uscc"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "capital", "min_value": 0}},
    ],
    "policy": {"tenants": ["bank_a", "bank_b"], "purposes": ["credit_risk"], "privacy_unit": "uscc",
               "output": {"min_group_size": 10, "require_approval": True}},
}

LOANS = {
    "name": "loans",
    "provider_kind": "market",
    "stewards": ["bank_steward"],
    "schema": [
        {"name": "loan_id", "type": "string", "role": "identifier", "nullable": False},
        {"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
        {"name": "amount", "type": "float64", "role": "measure"},
        {"name": "defaulted", "type": "int64", "role": "measure"},
    ],
    "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "defaulted", "value_set": [0, 1]}},
    ],
    "policy": {"tenants": ["bank_a"], "purposes": ["credit_risk"], "privacy_unit": "uscc",
               "output": {"min_group_size": 10, "require_approval": True}},
}


def write_data(d: Path) -> tuple[Path, Path]:
    rnd = random.Random(3)
    firms, loans = d / "firms.csv", d / "loans.csv"
    with open(firms, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uscc", "industry", "district", "capital"])
        for i in range(120):
            # district 500199 gets only 3 firms: its groups must be suppressed
            district = "500199" if i < 3 else rnd.choice(["500112", "500105"])
            w.writerow([f"F{i:017d}", rnd.choice(["C", "F", "I"]), district, round(rnd.uniform(10, 900), 2)])
    with open(loans, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["loan_id", "uscc", "amount", "defaulted"])
        for i in range(300):
            w.writerow([f"L{i:06d}", f"F{rnd.randrange(120):017d}", round(rnd.uniform(5, 500), 2),
                        int(rnd.random() < 0.1)])
    return firms, loans


@pytest.fixture
def landed(wh, people, tmp_path):
    """wh with `firms` (tax_steward) and `loans` (bank_steward) registered and landed."""
    from sandbox.datasets.manifest import parse_manifest

    firms, loans = write_data(tmp_path)
    wh.datasets.register(people["tax_steward"], parse_manifest(FIRMS))
    wh.datasets.register(people["bank_steward"], parse_manifest(LOANS))
    wh.ingest.ingest(people["tax_steward"], "firms", firms)
    wh.ingest.ingest(people["bank_steward"], "loans", loans)
    return wh


def make_job(root: Path, code: str, datasets=("firms", "loans"), purpose="credit_risk", name="j") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "job.yaml").write_text(yaml.safe_dump({"name": name, "purpose": purpose, "datasets": list(datasets)}))
    (root / "job.py").write_text(textwrap.dedent(code))
    return root


@pytest.fixture
def job_dir(tmp_path):
    counter = iter(range(1000))

    def make(code: str, **kw) -> Path:
        return make_job(tmp_path / f"job{next(counter)}", code, **kw)
    return make
