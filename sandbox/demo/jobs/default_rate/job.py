"""Default rate of small-business loans by industry x district.

Runs inside the warehouse sandbox: it cannot see any table, only gated answers from the broker.
"""
import twh_job

# What the sandbox offers: the datasets this job declared, with column roles (no rows).
for ds in twh_job.datasets():
    print(ds["name"], "version", ds["version"], [f"{c['name']}:{c['role']}" for c in ds["columns"]])

# Trying to read raw rows is refused by the gate, with a reason.
try:
    twh_job.query("SELECT * FROM bank_loans")
except twh_job.BrokerError as exc:
    print("refused as expected:", exc.code, "-", exc.message)

result = twh_job.query("""
    SELECT r.industry, r.district,
           COUNT(*)          AS loans,
           AVG(l.defaulted)  AS default_rate,
           AVG(l.amount)     AS mean_amount
    FROM bank_loans AS l
    JOIN enterprise_registry AS r ON l.uscc = r.uscc
    GROUP BY r.industry, r.district
    ORDER BY r.industry, r.district
""")
# How many cells were suppressed is withheld on real data (it could carry the values they hide);
# on mock data (`twh job run-local`) it is shown.
print(f"{len(result.rows)} groups released" + ("" if result.suppressed is None else f", {result.suppressed} suppressed"))
result.to_csv("default_rate_by_industry_district.csv")
