"""VAT paid per tax period, and a histogram of monthly VAT, from a dataset whose policy releases
only differentially-private aggregates: answers are noised, and each query is charged to the
dataset's ε budget."""
import twh_job


def describe(result, what):
    dp = result.raw["decisions"][-1]
    print(f"released {len(result.rows)} {what} with epsilon={dp['epsilon']} delta={dp['delta']} "
          f"(keys by {dp['keys']})")
    for n in dp["noise"]:
        print(f"  {n['column']}: discrete Laplace, scale {n['scale']:.4g}, 95% +/- {n['ci95_halfwidth']:.4g}")
    return dp


result = twh_job.query("""
    SELECT period, COUNT(*) AS filings, SUM(vat_paid) AS vat_paid
    FROM tax_payments
    GROUP BY period
    ORDER BY period
""")
dp = describe(result, "periods")
result.to_csv("vat_by_period_dp.csv")

# A histogram: monthly VAT clamped to the declared bounds [0, 20000] and bucketed by 2500 元. The
# buckets come from the bounds, not the data: all 9 are released (the last holds the clamped top).
hist = twh_job.query("""
    SELECT FLOOR(vat_paid / 2500) * 2500 AS vat_band, COUNT(*) AS filings
    FROM tax_payments
    GROUP BY vat_band
    ORDER BY vat_band
""")
describe(hist, "VAT bands")
hist.to_csv("vat_histogram_dp.csv")
twh_job.write_json("dp_release.json", {"epsilon": dp["epsilon"], "delta": dp["delta"], "noise": dp["noise"]})
