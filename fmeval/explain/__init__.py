"""Feature attributions (KernelSHAP, through the `shap` package) and partial dependence."""
