"""Synthetic data for the flagship scenario: small-business credit (普惠金融) in Chongqing.

Seeded and deterministic. Four CSV files (UTF-8), one per demo dataset:

* ``enterprise_registry`` — one row per enterprise: ``uscc`` (a valid 18-character unified
  social credit code, GB 32100-2015, whose embedded organisation code has a valid GB 11714
  check digit), ``industry`` (GB/T 4754 section letter), ``district`` (Chongqing county-level
  division code), ``registration_date``, ``registered_capital`` (万元);
* ``tax_payments`` — one row per enterprise and month (24 months, 2022-01 .. 2023-12, from the
  month of registration): ``vat_paid`` monthly, ``income_tax_paid`` in the quarterly
  prepayment months (January, April, July, October), both in 元;
* ``social_insurance`` — enterprise × month ``headcount`` of insured employees;
* ``bank_loans`` — Bank A's loan book: ``loan_id``, ``uscc``, ``issue_date``, ``amount`` (万元),
  ``term_months``, ``rate``, ``defaulted`` (0/1).

A latent "health" per enterprise (industry and district effects plus noise) drives taxes paid,
months without tax, headcount growth and the default probability, so default rates differ by
industry × district and a model trained on tax and headcount features has real signal. District ×
industry affinities make some cells small (fewer than 10 enterprises), so the demo shows
suppression.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# --- unified social credit codes --------------------------------------------------------------

#: GB 32100-2015 code alphabet (no I, O, S, V, Z)
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
#: weights of positions 1..17: 3**i mod 31
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
#: GB 11714-1997 organisation code weights of positions 1..8
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_value(c: str) -> int:
    # GB 11714 values: digits as themselves, letters A..Z as 10..35 (the full alphabet)
    return int(c) if c.isdigit() else ord(c) - ord("A") + 10


def org_code_check_digit(body8: str) -> str:
    """Check character of an 8-character organisation code body (GB 11714-1997)."""
    if len(body8) != 8 or not all(c.isdigit() or "A" <= c <= "Z" for c in body8):
        raise ValueError("an organisation code body is 8 digits or capital letters")
    c = 11 - sum(_org_value(ch) * w for ch, w in zip(body8, ORG_WEIGHTS, strict=True)) % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def uscc_check_char(first17: str) -> str:
    """Check character of the first 17 characters of a unified social credit code (GB 32100-2015)."""
    if len(first17) != 17 or any(c not in _USCC_VALUE for c in first17):
        raise ValueError("17 characters of the USCC alphabet are needed")
    c = 31 - sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True)) % 31
    return USCC_CHARSET[0 if c == 31 else c]


def validate_uscc(code: object, *, check_org_code: bool = True) -> bool:
    """True if ``code`` is a well-formed unified social credit code with a valid check character.

    With ``check_org_code`` (the default) the embedded organisation code (positions 9-17) must
    also carry a valid GB 11714 check digit.

    >>> validate_uscc("91350100M000100Y43")
    True
    >>> validate_uscc("91350100M000100Y44")
    False
    """
    if not isinstance(code, str) or len(code) != 18 or any(c not in _USCC_VALUE for c in code):
        return False
    if not code[2:8].isdigit():
        return False
    if uscc_check_char(code[:17]) != code[17]:
        return False
    return not check_org_code or org_code_check_digit(code[8:16]) == code[16]


def make_uscc(district: str, org_body8: str, *, authority: str = "9", category: str = "1") -> str:
    """Build a valid USCC: authority (9 = market regulator), category (1 = enterprise), division
    code, organisation code with its check digit, check character."""
    org = org_body8 + org_code_check_digit(org_body8)
    first17 = authority + category + district + org
    return first17 + uscc_check_char(first17)


# --- the scenario -----------------------------------------------------------------------------

#: Chongqing county-level divisions (Liangjiang New Area spans Yubei, Jiangbei and Beibei)
DISTRICTS: dict[str, str] = {
    "500112": "渝北区", "500105": "江北区", "500109": "北碚区", "500103": "渝中区",
    "500106": "沙坪坝区", "500108": "南岸区", "500107": "九龙坡区",
}
#: GB/T 4754-2017 sections
INDUSTRIES: dict[str, str] = {
    "C": "制造业", "F": "批发和零售业", "G": "交通运输、仓储和邮政业",
    "I": "信息传输、软件和信息技术服务业",
    "E": "建筑业", "M": "科学研究和技术服务业", "H": "住宿和餐饮业",
}
_DISTRICT_WEIGHT = np.array([0.28, 0.17, 0.10, 0.12, 0.12, 0.11, 0.10])
_INDUSTRY_WEIGHT = np.array([0.22, 0.30, 0.09, 0.13, 0.10, 0.06, 0.10])
# rows: districts in DISTRICTS order; columns: industries in INDUSTRIES order. Downtown Yuzhong has
# little manufacturing or construction; Beibei little IT; research firms cluster in Yubei.
_AFFINITY = np.array([
    # C    F    G    I    E    M    H
    [1.2, 0.9, 1.0, 1.4, 1.0, 1.6, 0.8],  # 渝北
    [0.8, 1.1, 1.0, 1.1, 0.9, 1.0, 1.1],  # 江北
    [1.6, 0.8, 1.1, 0.25, 1.1, 0.5, 0.9],  # 北碚
    [0.15, 1.3, 0.6, 1.2, 0.2, 0.7, 1.6],  # 渝中
    [1.1, 1.0, 1.2, 0.8, 1.0, 0.6, 1.0],  # 沙坪坝
    [0.9, 1.0, 0.9, 0.9, 1.1, 0.4, 1.1],  # 南岸
    [1.3, 1.0, 1.3, 0.6, 1.2, 0.3, 0.9],  # 九龙坡
])
_INDUSTRY_HEALTH = np.array([0.0, -0.15, 0.05, 0.35, -0.35, 0.25, -0.45])
_DISTRICT_HEALTH = np.array([0.25, 0.1, -0.2, 0.1, 0.0, -0.05, -0.1])
_INDUSTRY_TAX_SCALE = np.array([1.3, 1.0, 0.9, 1.1, 1.2, 0.8, 0.6])
_INDUSTRY_STAFF_SCALE = np.array([1.5, 0.7, 1.1, 1.0, 1.6, 0.8, 1.2])

PERIODS: tuple[str, ...] = tuple(f"{y}-{m:02d}" for y in (2022, 2023) for m in range(1, 13))
_PERIOD_START = np.array([np.datetime64(f"{p}-01") for p in PERIODS])
_ORG_LETTERS = "ABCDEFGHJKLMNPQRTUWXY"  # letters of the USCC alphabet (org codes draw from it)


def _enterprises(rng: np.random.Generator, n: int) -> pd.DataFrame:
    cell_p = (_DISTRICT_WEIGHT[:, None] * _INDUSTRY_WEIGHT[None, :] * _AFFINITY).ravel()
    cells = rng.choice(cell_p.size, size=n, p=cell_p / cell_p.sum())
    d_idx, i_idx = np.divmod(cells, len(INDUSTRIES))
    start = np.datetime64("2000-01-01")
    span = (np.datetime64("2023-06-30") - start).astype(int)
    # more young firms than old ones
    reg = start + (span * rng.power(2.2, n)).astype(int).astype("timedelta64[D]")
    age_years = (np.datetime64("2024-01-01") - reg).astype(int) / 365.25
    health = (rng.normal(0, 1, n) + _INDUSTRY_HEALTH[i_idx] + _DISTRICT_HEALTH[d_idx]
              + 0.35 * np.tanh((age_years - 5) / 5))
    capital = np.round(rng.lognormal(np.log(150), 1.1, n) * (1 + 0.3 * _INDUSTRY_TAX_SCALE[i_idx]), 2)
    codes: list[str] = []
    seen: set[str] = set()
    district_codes = list(DISTRICTS)
    for k in range(n):
        while True:
            if reg[k] >= np.datetime64("2015-10-01"):  # post-reform codes: "MA" + 6 characters
                body = "MA" + "".join(rng.choice(list("0123456789" + _ORG_LETTERS), 6))
            else:
                body = "".join(rng.choice(list("0123456789"), 8))
            code = make_uscc(district_codes[d_idx[k]], body)
            if code not in seen:
                seen.add(code)
                codes.append(code)
                break
    return pd.DataFrame({
        "uscc": codes,
        "industry": np.array(list(INDUSTRIES))[i_idx],
        "district": np.array(district_codes)[d_idx],
        "registration_date": reg.astype("datetime64[D]"),
        "registered_capital": capital,
        "_health": health,
        "_i": i_idx,
        "_size": np.log(capital),
    })


def _monthly(rng: np.random.Generator, ent: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    n, m = len(ent), len(PERIODS)
    registered = ent["registration_date"].to_numpy().astype("datetime64[D]")
    active = registered[:, None] <= _PERIOD_START[None, :] + np.timedelta64(27, "D")  # registered by the 28th
    health = ent["_health"].to_numpy()[:, None]
    t = np.arange(m)[None, :] / (m - 1)
    trend = 0.6 * health * (t - 0.5)  # healthy firms grow, unhealthy ones shrink
    season = 1 + 0.12 * np.sin(2 * np.pi * (np.arange(m)[None, :] % 12) / 12)
    scale = (_INDUSTRY_TAX_SCALE[ent["_i"].to_numpy()] * np.exp(0.8 * ent["_size"].to_numpy() - 1.2))[:, None]
    vat = 3000 * scale * np.exp(0.55 * health + trend) * season * rng.lognormal(0, 0.35, (n, m))
    zero = rng.random((n, m)) < 1 / (1 + np.exp(2.2 + 1.6 * health))  # months with no tax at all
    vat = np.where(zero, 0.0, np.round(vat, 2))
    quarter = np.isin(np.arange(m) % 12, [0, 3, 6, 9])[None, :]
    profit = np.clip(0.2 + 0.3 * health + rng.normal(0, 0.25, (n, m)), 0, None)
    income = np.where(quarter & ~zero, np.round(vat * 0.9 * profit, 2), 0.0)
    staff0 = np.exp(1.8 + 0.45 * ent["_size"].to_numpy() + 0.3 * ent["_health"].to_numpy()) \
        * _INDUSTRY_STAFF_SCALE[ent["_i"].to_numpy()] / 5
    headcount = np.maximum(0, np.round(staff0[:, None] * np.exp(trend + rng.normal(0, 0.06, (n, m))))).astype(np.int64)
    rows, cols = np.nonzero(active)
    uscc = ent["uscc"].to_numpy()[rows]
    period = np.array(PERIODS)[cols]
    tax = pd.DataFrame({"uscc": uscc, "period": period, "vat_paid": vat[rows, cols],
                        "income_tax_paid": income[rows, cols]})
    social = pd.DataFrame({"uscc": uscc, "period": period, "headcount": headcount[rows, cols]})
    return tax, social


def _loans(rng: np.random.Generator, ent: pd.DataFrame) -> pd.DataFrame:
    n = len(ent)
    reg = ent["registration_date"].to_numpy().astype("datetime64[D]")
    first_day = np.datetime64("2022-01-01")
    borrows = rng.random(n) < 0.7
    count = np.where(borrows, rng.choice([1, 1, 1, 2, 2, 3], n), 0)
    idx = np.repeat(np.arange(n), count)
    k = idx.size
    earliest = np.maximum(reg[idx], first_day)
    window = np.maximum((np.datetime64("2023-06-30") - earliest).astype(int), 1)
    issue = earliest + (rng.random(k) * window).astype(int).astype("timedelta64[D]")
    capital = ent["registered_capital"].to_numpy()[idx]
    amount = np.round(np.clip(capital * rng.lognormal(-0.9, 0.6, k), 5, 3000), 2)
    term = rng.choice([6, 12, 12, 12, 24, 36], k)
    health = ent["_health"].to_numpy()[idx]
    # the bank prices on what it sees (size, term), not on the health it cannot see
    rate = np.round(np.clip(0.0365 + 0.008 * term / 12 - 0.004 * np.log(amount / 50) + rng.normal(0, 0.006, k),
                            0.03, 0.15), 4)
    logit = -2.7 - 1.25 * health + 0.25 * np.log(amount / capital + 0.05) + 0.15 * (term / 12)
    defaulted = (rng.random(k) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    order = np.argsort(issue, kind="stable")
    # bank-internal ids: issue year + sequence number
    years = issue[order].astype("datetime64[Y]").astype(int) + 1970
    loan_id = [f"LN{y}{i:07d}" for i, y in enumerate(years.tolist(), start=1)]
    return pd.DataFrame({
        "loan_id": loan_id, "uscc": ent["uscc"].to_numpy()[idx][order], "issue_date": issue[order],
        "amount": amount[order], "term_months": term[order].astype(np.int64), "rate": rate[order],
        "defaulted": defaulted[order],
    })


def generate(out_dir: Path, *, n_enterprises: int = 2000, seed: int = 7) -> dict[str, Path]:
    """Write the four demo datasets as UTF-8 CSV files into ``out_dir``; return name -> path."""
    if n_enterprises < 1:
        raise ValueError("n_enterprises must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ent = _enterprises(rng, n_enterprises)
    tax, social = _monthly(rng, ent)
    loans = _loans(rng, ent)
    registry = ent[["uscc", "industry", "district", "registration_date", "registered_capital"]].copy()
    registry["registration_date"] = registry["registration_date"].dt.strftime("%Y-%m-%d")
    loans["issue_date"] = pd.to_datetime(loans["issue_date"]).dt.strftime("%Y-%m-%d")
    frames = {"enterprise_registry": registry, "tax_payments": tax, "social_insurance": social, "bank_loans": loans}
    paths: dict[str, Path] = {}
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
        paths[name] = path
    return paths


def write_bad_batch(out_dir: Path, *, seed: int = 11) -> Path:
    """A ``tax_payments`` batch that has the declared schema but breaks the data contract: a
    negative VAT amount and a malformed credit code among otherwise plausible rows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ent = _enterprises(rng, 40)
    tax, _ = _monthly(rng, ent)
    bad = tax[tax["period"] == "2023-12"].head(30).copy().reset_index(drop=True)
    bad["period"] = "2024-01"
    bad.loc[3, "vat_paid"] = -1250.0  # a refund booked as a negative payment
    bad.loc[7, "uscc"] = bad.loc[7, "uscc"][:17]  # a code truncated by a spreadsheet
    bad.loc[8, "uscc"] = bad.loc[8, "uscc"].lower()
    path = out / "tax_payments_2024-01_bad.csv"
    bad.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path
