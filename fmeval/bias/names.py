"""The names that bias commands offer as choices (metrics and methods), importable without NumPy or
pandas: the CLI builds its parsers, `--help` included, from them."""

PRE_TRAINING: dict[str, str] = {
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Positive Proportions in Labels (DPL)",
    "KL": "Kullback-Liebler Divergence (KL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    "LP": "L-p Norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
    "CDDL": "Conditional Demographic Disparity in Labels (CDDL)",
}
POST_TRAINING: dict[str, str] = {
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DI": "Disparate Impact (DI)",
    "DCA": "Difference in Conditional Acceptance (DCA)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "RD": "Recall Difference (RD)",
    "SD": "Specificity Difference (SD)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "AD": "Accuracy Difference (AD)",
    "CDDPL": "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
    "TE": "Treatment Equality (TE)",
    "FT": "Flip Test (FT)",
    "GE": "Generalized Entropy (GE)",
}

REBALANCE_METHODS = ("random-undersample", "random-oversample", "smote", "smotenc")
MITIGATION_METHODS = ("exponentiated-gradient", "grid-search", "threshold-optimizer")
CONSTRAINTS = ("demographic-parity", "equalized-odds")
SEARCH_METRICS = tuple(m for m in POST_TRAINING if m not in ("FT", "CDDPL"))
"""Post-training metrics a constrained search can trade against accuracy (FT and CDDPL need more
than predictions and facets)."""
