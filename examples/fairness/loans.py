"""Loans generated with known bias, rebalanced and mitigated: the README's before/after tables.

Men are 60% of the applicants; the label favours them (+1.5 on the log-odds) and the `income` feature
carries gender. Run: python examples/fairness/loans.py OUT_DIR
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fmeval.cli import main

out = Path(sys.argv[1] if len(sys.argv) > 1 else "fairness-out")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
n = 2000
gender = rng.choice(["female", "male"], n, p=[0.4, 0.6])
x1, x2 = rng.normal(size=n), rng.normal(size=n)
male = (gender == "male").astype(float)
label = (rng.random(n) < 1 / (1 + np.exp(-(x1 + 0.5 * x2 + 1.5 * male - 0.7)))).astype(int)
pd.DataFrame({"x1": x1, "x2": x2, "income": x1 + 1.5 * male, "gender": gender, "y": label}).to_csv(
    out / "loans.csv", index=False)

common = ["--label", "y", "--facet", "gender", "--facet-values", "female"]
assert main(["rebalance", str(out / "loans.csv"), *common, "--method", "smote", "-o", str(out / "rebalanced")]) == 0
assert main(["mitigate", str(out / "loans.csv"), *common, "-o", str(out / "mitigated")]) == 0
assert main(["mitigate", str(out / "loans.csv"), *common, "--method", "grid-search", "--search", "--n-trials", "20",
             "-o", str(out / "searched")]) == 0
rebalanced = json.loads((out / "rebalanced" / "rebalance.json").read_text())
print("\n| metric | before | after | change |\n|---|---|---|---|")
for m in rebalanced["pre_training_bias_metrics"]:
    print(f"| {m['name']} | {m['before']:.4f} | {m['after']:.4f} | {m['change']:+.4f} |")
print("\n| model (test rows) | accuracy | DPPL [95% CI] | DI [95% CI] |\n|---|---|---|---|")
for folder in ("mitigated", "searched"):
    summary = json.loads((out / folder / "mitigation.json").read_text())
    rows = [summary["baseline"], summary["chosen"]] if folder == "mitigated" else [summary["chosen"]]
    for row in rows:
        cells = [f"{row['metrics'][k]:.3f} [{row['ci'][k][0]:.3f}, {row['ci'][k][1]:.3f}]" for k in ("DPPL", "DI")]
        name = row["name"] if folder == "mitigated" else f"search: {row['name']} {json.dumps(row['params'])}"
        print(f"| {name} | {row['accuracy']:.3f} | {' | '.join(cells)} |")
