"""A streaming generator of a realistic government-registry CSV (Chinese names and addresses).

Used by ``bench/run.py ingest`` (100 MB … 10 GB) and the flat-memory test. Every chunk is built
with numpy and Arrow compute (no per-row Python), so a 10 GB file takes minutes, and memory stays
at one chunk whatever the size::

    python bench/govdata.py /work/bigdata/registry.csv 10G

Columns (declared types in :data:`MANIFEST`): a unified social credit code (统一社会信用代码, 18
characters), the company name, a 6-digit administrative division code (kept as text: leading
zeros matter), industry section, registration status (Chinese), registration date, registered
capital (万元), employees, VAT paid, and an address.
"""

from __future__ import annotations

import sys
from pathlib import Path

STATUSES = ["存续", "在业", "迁出", "注销", "吊销"]
INDUSTRIES = list("ABCDEFGHIJKLMNOPQRS")

MANIFEST = {
    "name": "bench_registry", "provider_kind": "government", "title": "企业登记与纳税 (bench)",
    "stewards": ["steward"],
    "schema": [{"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
               {"name": "company_name", "type": "string", "role": "identifier"},
               {"name": "region_code", "type": "string", "role": "dimension"},
               {"name": "industry", "type": "string", "role": "dimension", "categories": INDUSTRIES},
               {"name": "status", "type": "string", "role": "dimension", "categories": STATUSES},
               {"name": "registered_on", "type": "date", "role": "dimension"},
               {"name": "registered_capital", "type": "float64", "role": "measure", "min": 0},
               {"name": "employees", "type": "int64", "role": "measure", "min": 0},
               {"name": "vat_paid", "type": "float64", "role": "measure", "min": 0},
               {"name": "address", "type": "string", "role": "identifier"}],
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "uscc"}},
        {"type": "expect_column_value_lengths_to_equal", "kwargs": {"column": "uscc", "value": 18}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "industry", "value_set": INDUSTRIES}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": STATUSES}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "registered_capital", "min_value": 0}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "employees", "min_value": 0,
                                                                  "max_value": 1_000_000}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "vat_paid", "min_value": 0}},
    ],
    "policy": {"tenants": ["bank_a"], "purposes": ["credit_risk"], "output": {"min_group_size": 10}},
}

_PROVINCES = {"11": "北京市", "12": "天津市", "31": "上海市", "32": "江苏省", "33": "浙江省", "37": "山东省",
              "42": "湖北省", "44": "广东省", "51": "四川省", "61": "陕西省"}
_CITIES = ["海淀区", "朝阳区", "浦东新区", "南京市", "杭州市", "济南市", "武汉市", "广州市", "深圳市", "成都市",
           "西安市", "苏州市", "宁波市", "青岛市"]
_WORDS = list("华兴盛泰恒隆安达信诚宏远鑫源丰汇嘉瑞祥和正天联创新科锦绣利通明德")
_KINDS = ["科技", "贸易", "建筑工程", "餐饮管理", "物流", "电子商务", "医药", "农业发展", "文化传媒", "咨询服务"]
_FORMS = ["有限公司", "有限责任公司", "股份有限公司", "个体工商户"]
_ROADS = ["中山路", "人民路", "解放大道", "建设路", "长江路", "学院路", "科技园路", "滨江大道"]

#: size suffixes accepted by :func:`parse_size`
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str | int) -> int:
    """``"10G"``, ``"100M"``, ``"512K"`` or a byte count -> bytes."""
    s = str(text).strip().upper().removesuffix("B")
    if s and s[-1] in _UNITS:
        return int(float(s[:-1]) * _UNITS[s[-1]])
    return int(s)


def _chunk(rng, n: int):  # noqa: ANN001, ANN202  (numpy is imported lazily)
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def pick(pool: list[str], k: int = n) -> pa.Array:
        return pa.array(pool, pa.string()).take(pa.array(rng.integers(0, len(pool), k)))

    def digits(hi: int, width: int) -> pa.Array:
        return pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, hi, n)), pa.string()), width, "0")

    join = pc.binary_join_element_wise
    prov = list(_PROVINCES)
    province_idx = rng.integers(0, len(prov), n)
    province_code = pa.array(prov, pa.string()).take(pa.array(province_idx))
    province_name = pa.array(list(_PROVINCES.values()), pa.string()).take(pa.array(province_idx))
    region = join(province_code, digits(10_000, 4), "")
    # 统一社会信用代码: registering authority (9) + kind (1) + division code + 9-char org code + check char
    org = join(digits(10**8, 8), pick(list("0123456789ABCDEFGHJKLMNPQRTUWXY")), "")
    uscc = join(pick(["9", "9", "9", "1", "5"]), pick(["1", "2", "3"]), region, org, pick(list("0123456789ABX")),
                "")
    name = join(province_name, pick(_WORDS), pick(_WORDS), pick(_KINDS), pick(_FORMS), "")
    address = join(province_name, pick(_CITIES), pick(_ROADS), pc.cast(pa.array(rng.integers(1, 999, n)),
                                                                       pa.string()), "号", "")
    capital = np.round(rng.lognormal(5, 1.5, n), 2)
    vat = np.round(rng.lognormal(8, 2, n), 2) * (rng.random(n) > 0.1)
    return pa.table({
        "uscc": uscc, "company_name": name, "region_code": region,
        "industry": pick(INDUSTRIES), "status": pick(STATUSES),
        "registered_on": pa.array(rng.integers(7000, 20000, n).astype("int32")).cast(pa.date32()),
        "registered_capital": pa.array(capital), "employees": pa.array(rng.integers(0, 5000, n)),
        "vat_paid": pa.array(vat), "address": address})


def write_registry_csv(path: Path, size: int | str, *, seed: int = 0, chunk_rows: int = 100_000) -> int:
    """Write a CSV of at least ``size`` bytes (``"10G"`` etc.) to ``path``, streaming; its data rows."""
    import numpy as np
    import pyarrow.csv as pa_csv

    target = parse_size(size)
    rng = np.random.default_rng(seed)
    rows = 0
    first = _chunk(rng, 1)
    with open(path, "wb") as f, pa_csv.CSVWriter(f, first.schema) as w:
        while f.tell() < target:
            # the last chunk is cut to about the bytes still wanted (a row is ~200 bytes)
            n = min(chunk_rows, max(1, (target - f.tell()) // 150))
            w.write_table(_chunk(rng, n))
            rows += n
    return rows


if __name__ == "__main__":
    print(write_registry_csv(Path(sys.argv[1]), sys.argv[2]))
