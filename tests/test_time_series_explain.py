"""Asymmetric Shapley values of forecasts, on models whose attribution is known by construction.

A linear autoregressive model with a related series and static covariates,
    forecast_k = sum_l a[k, l] x[T-1-l] + sum_l c[k, l] z[T-1-l] + w . u + b,
has no interactions, so under every ordering a player adds exactly its own term: the attribution of
the target at step t is a[k, T-1-t] (x[t] - baseline), and the same for z and u, in every direction and
granularity. A model with interactions checks efficiency: the attributions sum to the forecast minus
the all-baseline forecast.
"""
import numpy as np
import pytest

from fmeval.errors import UserError
from fmeval.explain.time_series import explain_series

T, K = 6, 2
RNG = np.random.default_rng(0)
A, C, W, B = RNG.normal(size=(K, T)), RNG.normal(size=(K, T)), np.array([0.7, -1.3]), 0.25
X, Z, U = RNG.normal(3, 1, T), RNG.normal(-1, 2, T), {"store_size": 2.0, "region": 5.0}


def linear(records):
    out = []
    for r in records:
        x, z = np.array(r["target_time_series"]), np.array(r["related_time_series"]["price"])
        u = np.array([r["static_covariates"]["store_size"], r["static_covariates"]["region"]])
        out.append(A @ x[::-1] + C @ z[::-1] + W @ u + B)
    return out


def interacting(records):
    out = []
    for r in records:
        x, z = np.array(r["target_time_series"]), np.array(r["related_time_series"]["price"])
        u = r["static_covariates"]["store_size"] * r["static_covariates"]["region"]
        out.append([np.tanh(x[-1] * z[-2]) + x[0] * x[-1] + u * x.mean(), np.exp(0.1 * z.sum()) * u])
    return out


@pytest.mark.parametrize("direction,granularity,num_samples", [
    ("chronological", "timewise", None), ("anti_chronological", "timewise", None),
    ("bidirectional", "timewise", None), ("chronological", "fine_grained", 7)])
@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_linear_autoregressive_model_gets_its_own_terms(direction, granularity, num_samples, kind):
    base = {"target_time_series": kind, "related_time_series": kind,
            "static_covariates": {"shop-1": [1.0, 4.0]}}
    result = explain_series(linear, X, related={"price": Z}, static=U, item_id="shop-1", direction=direction,
                            granularity=granularity, num_samples=num_samples, baseline=base)
    x0 = X.mean() if kind == "mean" else 0.0
    z0 = Z.mean() if kind == "mean" else 0.0
    target_terms = A[:, ::-1] * (X - x0)  # (K, T): lag l is step T-1-l
    related_terms = C[:, ::-1] * (Z - z0)
    if granularity == "timewise":
        np.testing.assert_allclose(result.time, target_terms + related_terms, atol=1e-10)
    else:
        np.testing.assert_allclose(result.time[:, :, 0], target_terms, atol=1e-10)
        np.testing.assert_allclose(result.time[:, :, 1], related_terms, atol=1e-10)
    np.testing.assert_allclose(result.static["store_size"], W[0] * (2.0 - 1.0) * np.ones(K), atol=1e-10)
    np.testing.assert_allclose(result.static["region"], W[1] * (5.0 - 4.0) * np.ones(K), atol=1e-10)
    np.testing.assert_allclose(result.forecast, linear([{"target_time_series": X, "related_time_series": {"price": Z},
                                                         "static_covariates": U}])[0], atol=1e-12)


@pytest.mark.parametrize("direction,granularity,num_samples", [
    ("chronological", "timewise", None), ("anti_chronological", "timewise", None),
    ("bidirectional", "timewise", None), ("chronological", "fine_grained", 5)])
def test_efficiency_with_interactions(direction, granularity, num_samples):
    result = explain_series(interacting, X, related={"price": Z}, static=U, item_id=1, direction=direction,
                            granularity=granularity, num_samples=num_samples, baseline={"target_time_series": "mean"})
    np.testing.assert_allclose(result.total(), result.forecast - result.baseline_forecast, atol=1e-10)
    baseline_record = {"target_time_series": np.full(T, X.mean()), "related_time_series": {"price": np.zeros(T)},
                       "static_covariates": {"store_size": 0.0, "region": 0.0}}
    np.testing.assert_allclose(result.baseline_forecast, interacting([baseline_record])[0], atol=1e-12)
    if direction != "bidirectional" and granularity == "timewise":
        # chronological and anti-chronological differ when players interact: the order matters
        other = explain_series(interacting, X, related={"price": Z}, static=U, item_id=1,
                               direction="anti_chronological" if direction == "chronological" else "chronological",
                               baseline={"target_time_series": "mean"})
        assert not np.allclose(other.time, result.time)


def test_the_sdk_rules_are_enforced():
    with pytest.raises(UserError, match="fine_grained needs num_samples"):
        explain_series(linear, X, related={"price": Z}, static=U, granularity="fine_grained")
    with pytest.raises(UserError, match="not supported together"):
        explain_series(linear, X, related={"price": Z}, static=U, granularity="fine_grained", num_samples=3,
                       direction="bidirectional")
    with pytest.raises(UserError, match="only used for fine_grained"):
        explain_series(linear, X, related={"price": Z}, static=U, num_samples=3)
    with pytest.raises(UserError, match="zero or mean"):
        explain_series(linear, X, related={"price": Z}, static=U, baseline={"target_time_series": "median"})
    with pytest.raises(UserError, match="non-finite"):
        explain_series(linear, np.r_[X[:-1], np.nan], related={"price": Z}, static=U)


def test_analyze_takes_the_sdks_time_series_config_and_a_model_file(tmp_path):
    """Two shops as a long table, the SDK's keys, the linear model behind a joblib file (--trust-model)
    that answers objects read through time_series_predictor_config.forecast."""
    import joblib
    import pandas as pd

    from fmeval.bias.analyze import analyze
    from tests.support import ForecastModel

    rows = []
    for shop, shift in (("shop-1", 0.0), ("shop-2", 1.0)):
        for t in range(T):
            rows.append({"id": shop, "day": f"2026-01-0{t + 1}", "sales": X[t] + shift, "price": Z[t],
                         "store_size": U["store_size"] + shift, "region": U["region"]})
    frame = pd.DataFrame(rows).sample(frac=1, random_state=0)  # the rows in any order: sorted by timestamp
    joblib.dump(ForecastModel(A.tolist(), C.tolist(), W.tolist(), B), tmp_path / "model.joblib")
    config = {"dataset_type": "text/csv",
              "time_series_data_config": {"target_time_series": "sales", "item_id": "id", "timestamp": "day",
                                          "related_time_series": ["price"],
                                          "static_covariates": ["store_size", "region"]},
              "predictor": {"model_path": str(tmp_path / "model.joblib"),
                            "time_series_predictor_config": {"forecast": "mean"}},
              "methods": {"asymmetric_shapley_value": {"direction": "chronological", "granularity": "fine_grained",
                                                       "num_samples": 4, "baseline": {"target_time_series": "mean"}}}}
    frame.to_csv(tmp_path / "sales.csv", index=False)
    with pytest.raises(UserError, match="--trust-model"):
        analyze(config, tmp_path / "sales.csv", tmp_path / "out")
    result = analyze(config, tmp_path / "sales.csv", tmp_path / "out", trust_model=True)
    block = result["explanations"]["asymmetric_shapley_value"]
    assert [item["item_id"] for item in block["items"]] == ["shop-1", "shop-2"]
    second = block["items"][1]
    assert second["timestamps"] == [f"2026-01-0{t + 1}" for t in range(T)]
    target = np.array([[horizon[d] for d in second["timestamps"]] for horizon in second["attributions"]["target_time_series"]])
    np.testing.assert_allclose(target, A[:, ::-1] * (X + 1.0 - (X + 1.0).mean()), atol=1e-10)
    np.testing.assert_allclose(second["attributions"]["static_covariates"]["store_size"], W[0] * 3.0, atol=1e-10)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Time series: asymmetric Shapley values (chronological, fine_grained)" in html
    assert html.count("<rect") == 2 * K * 2 * T  # items x forecast steps x series x steps
