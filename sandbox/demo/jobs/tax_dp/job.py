"""VAT paid per tax period, from a dataset whose policy releases only differentially-private
aggregates: the answer is noised, and each query is charged to the dataset's ε budget."""
import twh_job

result = twh_job.query("""
    SELECT period, COUNT(*) AS filings, SUM(vat_paid) AS vat_paid
    FROM tax_payments
    GROUP BY period
    ORDER BY period
""")
dp = result.raw["decisions"][-1]
print(f"released {len(result.rows)} periods with epsilon={dp['epsilon']} delta={dp['delta']} "
      f"(keys by {dp['keys']})")
for n in dp["noise"]:
    print(f"  {n['column']}: discrete Laplace, scale {n['scale']:.4g}, 95% +/- {n['ci95_halfwidth']:.4g}")
result.to_csv("vat_by_period_dp.csv")
twh_job.write_json("dp_release.json", {"epsilon": dp["epsilon"], "delta": dp["delta"], "noise": dp["noise"]})
