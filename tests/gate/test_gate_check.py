"""The gate's checker: what it refuses (and under which rule), what it accepts, how it rewrites."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
import sqlglot

import sandbox.gate
from policies import load_policy
from sandbox.errors import InternalError, NotFound, QueryRefused
from sandbox.gate import RULES, ColumnRef, TableInfo, plan_query
from sandbox.gate import check as check_module

Lookup = Callable[[str], TableInfo]

JOIN = "FROM registry r JOIN loans l ON r.uscc = l.uscc"

REFUSED: list[tuple[str, str]] = [
    # statement shape
    ("", "query_text"),
    ("   ", "query_text"),
    ("SELECT COUNT(*) FROM registry WHERE industry = 'a\x00'", "query_text"),
    ("SELECT 1; SELECT 2", "single_statement"),
    ("SELECT COUNT(*) FROM registry; DROP TABLE registry", "single_statement"),
    ("SELECT COUNT(*) FROM registry -- ; DROP TABLE registry", "no_comments"),
    ("SELECT /* hi */ COUNT(*) FROM registry", "no_comments"),
    ("SELECT COUNT(*) FROM registry WHERE industry = 'C' /* unterminated", "parse_error"),
    ("SELECT COUNT(*) FROM registry WHERE industry = 'unterminated", "parse_error"),
    ("SELECT COUNT(*) FROM", "parse_error"),
    ("ATTACH '/tmp/x.db' AS x", "select_only"),
    ("COPY registry TO '/tmp/x.csv'", "select_only"),
    ("COPY (SELECT industry FROM registry) TO '/tmp/x.csv'", "select_only"),
    ("INSERT INTO registry VALUES (1)", "select_only"),
    ("UPDATE registry SET industry = 'x'", "select_only"),
    ("DELETE FROM registry", "select_only"),
    ("DROP TABLE registry", "select_only"),
    ("CREATE TABLE x AS SELECT industry FROM registry", "select_only"),
    ("INSTALL httpfs", "select_only"),
    ("LOAD httpfs", "select_only"),
    ("PRAGMA version", "select_only"),
    ("SET enable_external_access = true", "select_only"),
    ("RESET lock_configuration", "select_only"),
    ("CALL pragma_version()", "select_only"),
    ("DESCRIBE registry", "select_only"),
    ("SHOW TABLES", "select_only"),
    ("SUMMARIZE registry", "select_only"),
    ("EXPLAIN SELECT COUNT(*) FROM registry", "select_only"),
    ("PIVOT registry ON industry USING COUNT(*)", "select_only"),
    ("VALUES (1)", "select_only"),
    ("CHECKPOINT", "select_only"),
    ("EXPORT DATABASE '/tmp/x'", "parse_error"),
    ("WITH x AS (SELECT industry FROM registry) SELECT COUNT(*) FROM x", "no_cte"),
    ("SELECT COUNT(*) FROM registry UNION SELECT COUNT(*) FROM loans", "no_set_operation"),
    ("SELECT COUNT(*) FROM registry EXCEPT SELECT COUNT(*) FROM loans", "no_set_operation"),
    ("SELECT COUNT(*) FROM (SELECT industry FROM registry) s", "no_subquery"),
    ("SELECT COUNT(*) FROM registry WHERE industry IN (SELECT industry FROM registry)", "no_subquery"),
    ("SELECT COUNT(*) FROM registry WHERE EXISTS (SELECT 1)", "no_subquery"),
    ("SELECT COUNT(*) FROM registry WHERE industry = ANY (SELECT industry FROM registry)", "no_subquery"),
    # star and distinct
    ("SELECT * FROM registry", "no_star"),
    ("SELECT r.* FROM registry r", "no_star"),
    ("SELECT * EXCLUDE (name) FROM registry", "no_star"),
    ("FROM registry", "no_star"),
    ("SELECT DISTINCT industry FROM registry", "no_distinct"),
    ("SELECT COUNT(DISTINCT industry) FROM registry", "no_distinct"),
    ("SELECT SUM(DISTINCT capital) FROM registry", "no_distinct"),
    # FROM items
    ("SELECT COUNT(*) FROM read_parquet('x')", "table_function"),
    ("SELECT COUNT(*) FROM read_csv('/etc/passwd')", "table_function"),
    ("SELECT COUNT(*) FROM read_csv_auto('/etc/passwd')", "table_function"),
    ("SELECT COUNT(*) FROM read_json('/etc/passwd')", "table_function"),
    ("SELECT COUNT(*) FROM parquet_scan('/w/registry/*.parquet')", "table_function"),
    ("SELECT COUNT(*) FROM glob('/etc/*')", "table_function"),
    ("SELECT COUNT(*) FROM delta_scan('/w/registry')", "table_function"),
    ("SELECT COUNT(*) FROM range(10)", "table_function"),
    ("SELECT COUNT(*) FROM duckdb_settings()", "table_function"),
    ("SELECT COUNT(*) FROM (VALUES (1)) v(a)", "table_function"),
    ("SELECT COUNT(*) FROM '/etc/passwd'", "dataset_name"),
    ("SELECT COUNT(*) FROM 'registry/part-0.parquet'", "dataset_name"),
    ('SELECT COUNT(*) FROM "registry.parquet"', "dataset_name"),
    ("SELECT COUNT(*) FROM 's3://bucket/x'", "dataset_name"),
    ("SELECT COUNT(*)", "dataset_name"),
    ("SELECT COUNT(*) FROM main.registry", "qualified_name"),
    ("SELECT COUNT(*) FROM memory.main.registry", "qualified_name"),
    ("SELECT COUNT(*) FROM information_schema.tables", "qualified_name"),
    ("SELECT COUNT(*) FROM registry AT (VERSION => 0)", "unsupported_clause"),
    ("SELECT COUNT(*) FROM registry AS r(a, b)", "unsupported_clause"),
    ("SELECT COUNT(*) FROM registry USING SAMPLE 10%", "sample"),
    ("SELECT COUNT(*) FROM registry TABLESAMPLE (10 PERCENT)", "sample"),
    # clauses
    ("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry LIMIT 5", "limit"),
    ("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry OFFSET 5", "limit"),
    ("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry HAVING COUNT(*) > 1", "having"),
    ("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry QUALIFY n > 1", "qualify"),
    ("SELECT AVG(capital) OVER () FROM registry", "window_function"),
    ("SELECT industry, COUNT(*) OVER (PARTITION BY industry) FROM registry GROUP BY industry", "window_function"),
    # identifiers, anywhere, however spelled
    ("SELECT name, COUNT(*) FROM registry GROUP BY name", "identifier_column"),
    ("SELECT industry, COUNT(*) FROM registry GROUP BY industry, name", "identifier_column"),
    ("SELECT COUNT(*) FROM registry WHERE name = 'Firm 1'", "identifier_column"),
    ("SELECT COUNT(*) FROM registry WHERE name LIKE 'Firm%'", "identifier_column"),
    ("SELECT COUNT(name) FROM registry", "identifier_column"),
    ("SELECT COUNT(*) AS n FROM registry ORDER BY name", "identifier_column"),
    ('SELECT COUNT(*) FROM registry WHERE "name" = \'x\'', "identifier_column"),
    ("SELECT COUNT(*) FROM registry WHERE NAME = 'x'", "identifier_column"),
    ('SELECT COUNT(*) FROM registry WHERE "NaMe" = \'x\'', "identifier_column"),
    ("SELECT COUNT(*) FROM registry r WHERE r.NAME = 'x'", "identifier_column"),
    ("SELECT name AS industry, COUNT(*) FROM registry GROUP BY industry", "identifier_column"),
    ("SELECT upper(name) AS n FROM registry", "identifier_column"),
    ("SELECT COUNT(*) FROM registry WHERE lower(name) = 'x'", "identifier_column"),
    (f"SELECT COUNT(*) {JOIN} WHERE l.loan_id = 'L000001'", "identifier_column"),
    # alias shadowing: the output name is a label; the column is what is checked
    ("SELECT district AS industry, COUNT(*) FROM registry GROUP BY industry", "not_grouped"),
    ("SELECT industry FROM registry", "not_grouped"),
    # measures and join keys
    ("SELECT capital FROM registry", "measure_outside_aggregate"),
    ("SELECT capital, COUNT(*) FROM registry GROUP BY capital", "measure_outside_aggregate"),
    ("SELECT COUNT(*) FROM registry WHERE capital > 5", "measure_outside_aggregate"),
    ("SELECT capital * 2 AS c FROM registry", "measure_outside_aggregate"),
    ("SELECT CASE WHEN capital > 1 THEN 1 ELSE 0 END AS c FROM registry", "measure_outside_aggregate"),
    ("SELECT uscc, COUNT(*) FROM registry GROUP BY uscc", "join_key_outside_on"),
    ("SELECT COUNT(*) FROM registry WHERE uscc = '915000000000000001'", "join_key_outside_on"),
    ("SELECT COUNT(uscc) FROM registry", "join_key_outside_on"),
    # aggregates
    ("SELECT MIN(capital) FROM registry", "aggregate_not_allowed"),
    ("SELECT MAX(capital) FROM registry", "aggregate_not_allowed"),
    ("SELECT median(capital) FROM registry", "aggregate_not_allowed"),
    ("SELECT quantile(capital, 0.5) FROM registry", "aggregate_not_allowed"),
    ("SELECT string_agg(industry, ',') FROM registry", "aggregate_not_allowed"),
    ("SELECT list(industry) FROM registry", "aggregate_not_allowed"),
    ("SELECT arg_max(industry, capital) FROM registry", "aggregate_not_allowed"),
    ("SELECT first(industry) FROM registry", "aggregate_not_allowed"),
    ("SELECT mode(industry) FROM registry", "aggregate_not_allowed"),
    ("SELECT stddev(capital) FROM registry", "aggregate_not_allowed"),
    ("SELECT any_value(industry) FROM registry", "aggregate_not_allowed"),
    ("SELECT upper(industry) AS u FROM registry", "function_not_allowed"),
    ("SELECT mean(capital) FROM registry", "function_not_allowed"),
    ("SELECT histogram(industry) FROM registry", "function_not_allowed"),
    ("SELECT SUM(capital * 2) FROM registry", "aggregate_argument"),
    ("SELECT SUM(CASE WHEN capital > 1 THEN 1 ELSE 0 END) FROM registry", "aggregate_argument"),
    ("SELECT SUM(industry) FROM registry", "aggregate_argument"),
    ("SELECT AVG(active) FROM registry", "aggregate_argument"),
    ("SELECT COUNT(1) FROM registry", "aggregate_argument"),
    ("SELECT COUNT() FROM registry", "aggregate_argument"),
    ("SELECT SUM(capital) FILTER (WHERE industry = 'C') FROM registry", "aggregate_filter"),
    ("SELECT 1 FROM registry", "select_item"),
    ("SELECT 'x' AS a FROM registry", "select_item"),
    # GROUP BY / ORDER BY
    ("SELECT industry, COUNT(*) FROM registry GROUP BY 1", "group_by"),
    ("SELECT industry, COUNT(*) FROM registry GROUP BY ALL", "group_by"),
    ("SELECT industry, COUNT(*) FROM registry GROUP BY ROLLUP (industry)", "group_by"),
    ("SELECT industry, COUNT(*) FROM registry GROUP BY CUBE (industry)", "group_by"),
    ("SELECT COUNT(*) FROM registry GROUP BY upper(industry)", "group_by"),
    # histogram buckets: literal bounds, count and width; selected and grouped; numeric columns
    ("SELECT FLOOR(capital / 1000) AS k, COUNT(*) FROM registry GROUP BY 1", "group_by"),
    ("SELECT FLOOR(capital / 1000) AS k, COUNT(*) FROM registry", "not_grouped"),
    ("SELECT WIDTH_BUCKET(capital, 0, 10, 3) AS k, COUNT(*) FROM registry GROUP BY industry", "not_grouped"),
    ("SELECT FLOOR(capital / 1000) * 10 AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT FLOOR(capital / 0) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT FLOOR(capital / -5) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT FLOOR(capital) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT FLOOR(capital / employees) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT FLOOR((capital + 1) / 10) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT WIDTH_BUCKET(capital, 10, 1, 3) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT WIDTH_BUCKET(capital, 0, 10, 0) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT WIDTH_BUCKET(capital, 0, 10, 2.5) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT WIDTH_BUCKET(capital, 0, 10, 100000) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT WIDTH_BUCKET(capital, 0, '9', 3) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT WIDTH_BUCKET(capital * 2, 0, 10, 3) AS k, COUNT(*) FROM registry GROUP BY k", "group_by"),
    ("SELECT COUNT(*) FROM registry r JOIN loans l ON r.uscc = l.uscc GROUP BY FLOOR(l.uscc / 10)",
     "join_key_outside_on"),
    ("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry ORDER BY 2", "order_by"),
    ("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry ORDER BY COUNT(*)", "order_by"),
    ("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry, district ORDER BY district", "order_by"),
    # WHERE
    ("SELECT COUNT(*) FROM registry WHERE industry = district", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE upper(industry) = 'C'", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE 1 = 1", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry GLOB 'C*'", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry SIMILAR TO 'C.*'", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE regexp_matches(industry, 'C')", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry LIKE 'C%' ESCAPE '!'", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry LIKE district", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry = 'C' COLLATE nocase", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE reg_date > current_date", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE reg_date > CAST(industry AS DATE)", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry = $1", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry = ?", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry IS TRUE", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry = 'C' || 'F'", "where_clause"),
    ("SELECT COUNT(*) FROM registry WHERE industry = CAST('C' AS VARCHAR)", "where_clause"),
    # joins
    ("SELECT COUNT(*) FROM registry r, loans l", "join_type"),
    ("SELECT COUNT(*) FROM registry r CROSS JOIN loans l", "join_type"),
    ("SELECT COUNT(*) FROM registry r LEFT JOIN loans l ON r.uscc = l.uscc", "join_type"),
    ("SELECT COUNT(*) FROM registry r FULL OUTER JOIN loans l ON r.uscc = l.uscc", "join_type"),
    ("SELECT COUNT(*) FROM registry r NATURAL JOIN loans l", "join_type"),
    ("SELECT COUNT(*) FROM registry r POSITIONAL JOIN loans l", "join_type"),
    ("SELECT COUNT(*) FROM registry r ASOF JOIN loans l ON r.uscc >= l.uscc", "join_type"),
    ("SELECT COUNT(*) FROM registry r SEMI JOIN loans l ON r.uscc = l.uscc", "join_type"),
    ("SELECT COUNT(*) FROM registry r ANTI JOIN loans l ON r.uscc = l.uscc", "join_type"),
    ("SELECT COUNT(*) FROM registry r JOIN loans l USING (uscc)", "join_condition"),
    ("SELECT COUNT(*) FROM registry r JOIN loans l ON TRUE", "join_condition"),
    ("SELECT COUNT(*) FROM registry r JOIN loans l ON r.uscc <> l.uscc", "join_condition"),
    ("SELECT COUNT(*) FROM registry r JOIN loans l ON r.uscc = l.uscc OR r.uscc = l.uscc", "join_condition"),
    ("SELECT COUNT(*) FROM registry r JOIN loans l ON r.industry = l.term", "join_condition"),
    ("SELECT COUNT(*) FROM registry r JOIN loans l ON r.uscc = r.uscc", "join_condition"),
    ("SELECT COUNT(*) FROM registry r JOIN loans l ON r.uscc = l.uscc AND r.industry = 'C'", "join_condition"),
    ("SELECT COUNT(*) FROM registry JOIN loans ON uscc = uscc", "ambiguous_column"),
    ("SELECT COUNT(*) FROM registry r JOIN registry r2 ON r.uscc = r2.uscc", "dataset_repeated"),
    ("SELECT COUNT(*) FROM registry r JOIN loans r ON r.uscc = r.uscc", "alias"),
    # names
    ("SELECT COUNT(salary) FROM registry", "unknown_column"),
    ("SELECT x.industry, COUNT(*) FROM registry r GROUP BY x.industry", "unknown_table"),
    ("SELECT registry.industry, COUNT(*) FROM registry r GROUP BY registry.industry", "unknown_table"),
    ("SELECT COUNT(*) AS __twh_rows FROM registry", "alias"),
    ("SELECT COUNT(*) AS __TWH_units FROM registry", "alias"),
    ('SELECT COUNT(*) AS "a b" FROM registry', "alias"),
    ("SELECT COUNT(*), COUNT(*) FROM registry", "alias"),
    ("SELECT COUNT(*) AS n, SUM(capital) AS N FROM registry", "alias"),
    ('SELECT COUNT(*) AS "" FROM registry', "alias"),
    ("SELECT COUNT(*) FROM registry WHERE " + "(" * 65 + "industry = 'C'" + ")" * 65, "query_text"),
    ("SELECT COUNT(*) FROM registry WHERE " + " AND ".join(["industry = 'C'"] * 1100), "query_text"),
    ("SELECT COUNT(*) FROM registry WHERE " + "NOT " * 3000 + "industry = 'C'", "query_text"),
    ("SELECT COUNT(*) FROM registry WHERE industry = '" + "x" * 20_000 + "'", "query_text"),
]


@pytest.mark.parametrize(("sql", "rule"), REFUSED, ids=[f"{r}:{s[:50]}:{len(s)}" for s, r in REFUSED])
def test_refused(sql: str, rule: str, lookup: Lookup) -> None:
    with pytest.raises(QueryRefused) as e:
        plan_query(sql, lookup)
    assert e.value.details["rule"] == rule, e.value.message
    assert e.value.message
    assert e.value.code == "query_refused"


def test_every_refusal_rule_is_declared(lookup: Lookup) -> None:
    assert {rule for _, rule in REFUSED} <= set(RULES)


def test_rule_names_are_pinned() -> None:
    # Clients and audit readers key on these strings: changing one is a breaking change.
    assert set(RULES) == {
        "query_text", "parse_error", "no_comments", "single_statement", "select_only", "no_cte", "no_subquery",
        "no_set_operation", "no_star", "no_distinct", "unsupported_clause", "limit", "sample", "qualify",
        "having", "window_function", "table_function", "qualified_name", "dataset_name", "dataset_repeated",
        "join_type", "join_condition", "unknown_table", "unknown_column", "ambiguous_column",
        "identifier_column", "measure_outside_aggregate", "join_key_outside_on", "aggregate_not_allowed",
        "aggregate_argument", "aggregate_filter", "function_not_allowed", "select_item", "not_grouped", "alias",
        "where_clause", "group_by", "order_by", "release_mode", "literal_type", "engine_rejected", "timeout",
        "resource_limit", "differencing", "bucket_edges", "release_budget", "record_keys",
        "dp_bounds", "dp_unit", "dp_keys", "dp_budget", "dp_quantile",
    }


def test_public_api_is_pinned() -> None:
    assert sorted(sandbox.gate.__all__) == sorted([
        "ENGINES", "RELEASE_MODES", "RULES", "AggregateSpec", "BucketRef", "ColumnRef", "GatedResult", "HiddenColumn",
        "QueryPlan",
        "ReleaseMode", "Released", "SdcRelease", "TableInfo", "json_safe", "open_connection", "plan_query",
        "run_query",
    ])


def test_refusal_does_not_echo_literal_values(lookup: Lookup) -> None:
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT COUNT(*) FROM registry WHERE name = 'SECRET-VALUE'", lookup)
    assert "SECRET" not in e.value.message and "SECRET" not in str(e.value.details)
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT COUNT(*) FROM registry WHERE industry = 'SECRET-VALUE", lookup)
    assert "SECRET" not in e.value.message


def test_unknown_dataset_is_not_found(lookup: Lookup) -> None:
    with pytest.raises(NotFound):
        plan_query("SELECT COUNT(*) FROM salaries", lookup)
    with pytest.raises(NotFound):
        plan_query("SELECT COUNT(*) FROM registry r JOIN salaries s ON r.uscc = s.uscc", lookup)


def test_dataset_names_are_looked_up_lowercase(lookup: Lookup) -> None:
    assert plan_query("SELECT COUNT(*) FROM REGISTRY", lookup).tables == ("registry",)


# ------------------------------------------------------------------ accepted shapes and the rewrite


def test_count_by_dimension_plan(lookup: Lookup) -> None:
    plan = plan_query("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry ORDER BY n DESC", lookup)
    assert plan.tables == ("registry",)
    assert plan.output_columns == ("industry", "n")
    assert plan.group_columns == (ColumnRef("registry", "industry"),)
    assert plan.hidden_columns == ("__twh_rows", "__twh_units", "__twh_ckey", "__twh_key0", "__twh_ids_0")
    assert [h.kind for h in plan.hidden] == ["size", "size", "ckey", "key", "units"]
    assert plan.unit_columns == (ColumnRef("registry", "uscc"),)
    assert plan.unit_scopes == (("registry",),)
    assert plan.min_group_size == 10
    assert plan.release_mode == "sdc"
    assert plan.require_approval is True
    assert 'FROM "registry"' in plan.engine_sql
    # two levels: per (group, unit), then per group, where each first-level row is one unit
    assert 'GROUP BY "registry"."industry", "registry"."uscc"' in plan.engine_sql
    assert 'COUNT("__twh_u0") AS "__twh_units"' in plan.engine_sql
    assert "ORDER BY 2 DESC" in plan.engine_sql
    # the rows' secret record keys are read too: their sum is the cell key (and the cell's identity)
    assert dict(plan.columns_read) == {"registry": ("industry", "uscc", "__twh_rkey")}
    assert 'SUM("__twh_k") AS "__twh_ckey"' in plan.engine_sql
    assert len(plan.sql_sha256) == 64
    assert all(d.allowed and d.rule in {*RULES, "min_group_size", "dominance", "p_percent", "secondary", "exact"}
               for d in plan.decisions)
    # the differencing guard's unit lists are collected only when asked for
    bare = plan_query("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry", lookup, populations=False)
    assert bare.hidden_columns == ("__twh_rows", "__twh_units", "__twh_ckey", "__twh_key0")
    assert "ARRAY_AGG" not in bare.engine_sql


def test_case_and_quoting_resolve_to_declared_names(lookup: Lookup) -> None:
    plan = plan_query('SELECT "INDUSTRY", Count(*) AS n FROM Registry R GROUP BY r.Industry', lookup)
    assert plan.output_columns == ("industry", "n")
    assert plan.group_columns == (ColumnRef("registry", "industry"),)


def test_rewrite_drops_user_text(lookup: Lookup) -> None:
    plan = plan_query("SELECT zz.industry AS ind, AVG(zz.capital) AS avg_cap FROM registry AS zz "
                      "WHERE zz.district IN ('yubei', 'it''s') GROUP BY zz.industry", lookup)
    assert "zz" not in plan.engine_sql  # aliases are replaced by dataset names
    assert "'it''s'" in plan.engine_sql  # literals are re-quoted
    # The rewrite is valid DuckDB SQL that sqlglot reads back to the same tree.
    again = sqlglot.parse_one(plan.engine_sql, read="duckdb").sql(dialect="duckdb")
    assert again == plan.engine_sql


def test_join_plan_uses_strictest_threshold_and_one_unit(lookup: Lookup) -> None:
    plan = plan_query(f"SELECT r.industry, AVG(l.defaulted) AS rate, COUNT(*) AS loans {JOIN} "
                      "GROUP BY r.industry ORDER BY r.industry", lookup)
    assert plan.tables == ("registry", "loans")
    assert plan.min_group_size == 20
    # the two units are joined by equality: counting one is enough
    assert plan.unit_columns == (ColumnRef("registry", "uscc"),)
    assert 'INNER JOIN "loans" ON "registry"."uscc" = "loans"."uscc"' in plan.engine_sql
    assert "ORDER BY 1" in plan.engine_sql
    assert any(d.rule == "join_condition" for d in plan.decisions)


def test_aggregates_are_sized_by_their_non_null_units(lookup: Lookup) -> None:
    plan = plan_query("SELECT SUM(employees) AS e, COUNT(*) AS n FROM registry", lookup)
    assert plan.hidden_columns == ("__twh_rows", "__twh_units", "__twh_units_0_a0", "__twh_top_a0",
                                   "__twh_total_a0", "__twh_ckey", "__twh_ids_0")
    # dominance and p% read the two largest per-unit |sums| and their total
    assert 'MAX(ABS("__twh_s0"), 2) AS "__twh_top_a0"' in plan.engine_sql
    assert 'SUM(ABS("__twh_s0")) AS "__twh_total_a0"' in plan.engine_sql
    assert 'COUNT("registry"."employees") AS "__twh_c0"' in plan.engine_sql
    assert 'COUNT("__twh_u0") FILTER(WHERE "__twh_c0" > 0) AS "__twh_units_0_a0"' in plan.engine_sql


def test_rows_are_the_unit_without_privacy_unit() -> None:
    policy = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": {"d": "dimension", "m": "measure"}})
    info = TableInfo("stats", policy, ("d", "m"))
    plan = plan_query("SELECT d, SUM(m) AS s FROM stats GROUP BY d", lambda name: info)
    assert plan.unit_columns == ()
    # rows are the contributors; no unit values to collect. The policy's default perturbs: the cell
    # key comes along
    assert plan.hidden_columns == ("__twh_rows", "__twh_rows_a0", "__twh_top_a0", "__twh_total_a0",
                                   "__twh_ckey", "__twh_key0")
    assert 'MAX(ABS("stats"."m"), 2)' in plan.engine_sql
    assert plan.perturbation is not None and plan.perturbation.ptable == "ons_10_5"


def test_where_shapes_are_accepted(lookup: Lookup) -> None:
    plan = plan_query(
        "SELECT COUNT(*) AS n FROM registry WHERE (industry = 'C' OR industry <> 'F') AND NOT district IN ('a', 'b') "
        "AND reg_date BETWEEN DATE '2012-01-01' AND '2020-01-01'::DATE AND district IS NOT NULL "
        "AND industry LIKE 'C%' AND district NOT ILIKE 'x%' AND active = TRUE AND reg_date >= TIMESTAMP '2011-01-01' "
        "AND industry != 'Q' AND 'G' >= industry OR industry IS NULL",
        lookup,
    )
    kinds = {(str(c), k) for c, k in plan.literal_kinds}
    assert kinds == {
        ("registry.industry", "string"), ("registry.district", "string"), ("registry.reg_date", "temporal"),
        ("registry.industry", "pattern"), ("registry.district", "pattern"), ("registry.active", "boolean"),
    }


def test_release_mode_must_be_available(lookup: Lookup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_module, "RELEASE_MODES", {})
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT COUNT(*) FROM registry", lookup)
    assert e.value.details["rule"] == "release_mode"


def test_privacy_unit_missing_from_table_is_a_bug() -> None:
    policy = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": {"d": "dimension", "u": "identifier"},
                          "privacy_unit": "u"})
    info = TableInfo("t", policy, ("d",))
    with pytest.raises(InternalError):
        plan_query("SELECT d, COUNT(*) AS n FROM t GROUP BY d", lambda name: info)


def test_physical_column_without_role_fails_closed() -> None:
    policy = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": {"d": "dimension"}})
    info = TableInfo("t", policy, ("d", "secret"))
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT secret, COUNT(*) AS n FROM t GROUP BY secret", lambda name: info)
    assert e.value.details["rule"] == "unknown_column"


def test_plan_to_dict_has_no_original_sql(lookup: Lookup) -> None:
    d = plan_query("SELECT COUNT(*) AS n FROM registry WHERE industry = 'C'", lookup).to_dict()
    assert "original_sql" not in d and d["sql_sha256"] and d["min_group_size"] == 10


# ------------------------------------------------------------------ property-style checks (seeded)

SPELLINGS = ["name", "NAME", '"name"', '"Name"', "r.name", "r.NAME", 'r."name"']
TEMPLATES = [
    "SELECT {c}, COUNT(*) AS n FROM registry r GROUP BY {c}",
    "SELECT industry, COUNT(*) AS n FROM registry r GROUP BY industry, {c}",
    "SELECT COUNT(*) AS n FROM registry r WHERE {c} = 'x'",
    "SELECT COUNT(*) AS n FROM registry r WHERE {c} IN ('x', 'y') OR industry = 'C'",
    "SELECT COUNT(*) AS n FROM registry r WHERE NOT ({c} IS NULL)",
    "SELECT COUNT({c}) AS n FROM registry r",
    "SELECT industry, COUNT(*) AS n FROM registry r GROUP BY industry ORDER BY {c}",
    "SELECT {c} AS industry, COUNT(*) AS n FROM registry r GROUP BY industry",
    "SELECT COUNT(*) AS n FROM registry r JOIN loans l ON r.uscc = l.uscc WHERE {c} LIKE 'F%'",
    "SELECT FLOOR({c} / 10) AS k, COUNT(*) AS n FROM registry r GROUP BY k",
    "SELECT COUNT(*) AS n FROM registry r GROUP BY WIDTH_BUCKET({c}, 0, 10, 2)",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_identifier_is_refused_in_every_position_and_spelling(template: str, lookup: Lookup) -> None:
    for spelling in SPELLINGS:
        with pytest.raises(QueryRefused) as e:
            plan_query(template.format(c=spelling), lookup)
        assert e.value.details["rule"] == "identifier_column", (template, spelling)


def test_same_templates_with_a_dimension_are_accepted(lookup: Lookup) -> None:
    # The control for the test above: the templates themselves are valid.
    for template in TEMPLATES[:6] + TEMPLATES[8:]:
        plan_query(template.format(c="r.district"), lookup)
    plan_query(TEMPLATES[6].format(c="industry"), lookup)
    plan_query(TEMPLATES[7].format(c="industry"), lookup)


def test_random_allowed_queries_always_plan(lookup: Lookup) -> None:
    rng = random.Random(1234)
    dims = ["industry", "district", "reg_date", "active"]
    aggs = ["COUNT(*)", "SUM(capital)", "AVG(capital)", "COUNT(employees)", "AVG(employees)", "COUNT(industry)"]
    preds = ["industry = 'C'", "district <> 'banan'", "reg_date >= DATE '2015-01-01'", "active = FALSE",
             "industry IN ('C', 'F')", "district LIKE 'y%'", "reg_date BETWEEN '2011-01-01' AND '2019-01-01'"]
    for _ in range(200):
        g = rng.sample(dims, rng.randrange(0, 3))
        a = rng.sample(aggs, rng.randrange(1, 4))
        select = g + [f"{x} AS a{i}" for i, x in enumerate(a)]
        sql = f"SELECT {', '.join(select)} FROM registry"
        if rng.random() < 0.7:
            p = rng.sample(preds, rng.randrange(1, 4))
            sql += " WHERE " + f" {rng.choice(['AND', 'OR'])} ".join(p)
        if g:
            sql += f" GROUP BY {', '.join(g)}"
        plan = plan_query(sql, lookup)
        assert plan.output_columns == tuple(g + [f"a{i}" for i in range(len(a))])
        assert all(h.startswith("__twh") for h in plan.hidden_columns)


def test_every_two_clause_combination_of_refused_shapes_is_refused(lookup: Lookup) -> None:
    # Refusals compose: appending a second bad clause to a bad query never makes it acceptable.
    bad_selects = ["SELECT MIN(capital) AS m FROM registry", "SELECT name, COUNT(*) AS n FROM registry GROUP BY name"]
    bad_tails = [" LIMIT 1", " WHERE upper(industry) = 'C'", " ORDER BY 1"]
    for head, tail in itertools.product(bad_selects, bad_tails):
        with pytest.raises(QueryRefused):
            plan_query(head + tail, lookup)
