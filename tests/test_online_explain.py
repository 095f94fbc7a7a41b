"""Explanations served with each prediction: the batched KernelSHAP against shap 0.51.0's
KernelExplainer called per row with the same samples, seed and baseline, through a real loopback server."""
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import joblib
import numpy as np
import pytest

from fmeval.cli import main
from fmeval.explain.online import OnlineExplainer, build_app, read_config
from tests.support import serve_in_thread

FEATURES, SAMPLES, SEED = 20, 150, 5


@pytest.fixture(scope="module")
def model_and_data():
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, FEATURES))
    y = (X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3] > 0).astype(int)
    return GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y), X


def shap_reference(model, baseline, row):
    import shap

    explainer = shap.KernelExplainer(lambda rows: model.predict_proba(rows)[:, 1], baseline)
    np.random.seed(SEED)
    return np.asarray(explainer.explain(row[None, :], nsamples=SAMPLES, l1_reg=False)), explainer.expected_value


def config(baseline):
    return {"ShapConfig": {"ShapBaselineConfig": {"ShapBaseline": "\n".join(",".join(repr(float(v)) for v in r) for r in baseline)},
                           "NumberOfSamples": SAMPLES, "Seed": SEED},
            "InferenceConfig": {"FeatureHeaders": [f"f{i}" for i in range(FEATURES)]}}


def test_a_batch_equals_kernel_explainer_per_row_and_adds_up(model_and_data):
    model, X = model_and_data
    baseline = X[:8].copy()
    baseline[:, 9] = 0.5  # a constant baseline column
    explainer = OnlineExplainer(lambda rows: model.predict_proba(rows)[:, 1], **read_config(config(baseline)))
    rows = X[200:212].copy()
    rows[3, :9] = baseline[2, :9]  # equal to one baseline row in those: it differs from the others, the batched path
    rows[5, 9] = 0.5  # equal to every baseline row in feature 9: shap leaves it out, and explains the row itself
    explainer.calls = 0
    predictions, values = explainer.explain(rows)
    assert explainer.calls == 1 + 2  # the batch; for row 5, shap's f(x) and its synthetic rows
    assert values[5, 0, 9] == 0
    for i, row in enumerate(rows):
        expected, expected_value = shap_reference(model, baseline, row)
        np.testing.assert_allclose(values[i, 0], expected, atol=1e-9, rtol=0)
        assert predictions[i, 0] == pytest.approx(model.predict_proba(row[None, :])[0, 1], abs=1e-12)
        assert values[i, 0].sum() == pytest.approx(predictions[i, 0] - expected_value, abs=1e-9)


def test_the_server_answers_concurrent_requests_in_clarifys_online_format(model_and_data, tmp_path, capsys):
    model, X = model_and_data
    baseline = X[:8]
    explainer = OnlineExplainer(lambda rows: model.predict_proba(rows)[:, 1], **read_config(config(baseline)))
    url, stop = serve_in_thread(build_app(explainer, batch_window_ms=20))
    try:
        rows = X[300:320]
        with httpx.Client(timeout=60) as client, ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda r: client.post(f"{url}/invocations", json={"instances": [r.tolist()]}),
                                    rows))
            csv = client.post(f"{url}/invocations", content="1,2,3", headers={"Content-Type": "text/csv"})
            health = client.get(f"{url}/ping").json()
    finally:
        stop()
    assert csv.status_code == 400 and "needs 20 numeric features" in csv.json()["error"]
    assert health["requests"] == 21 - 1 and health["batches"] <= 20
    for row, answer in zip(rows, answers):
        assert answer.status_code == 200
        body = answer.json()
        (record,) = body["explanations"]["kernel_shap"]
        assert [f["feature_header"] for f in record] == [f"f{i}" for i in range(FEATURES)]
        served = np.array([f["attributions"][0]["attribution"][0] for f in record])
        np.testing.assert_allclose(served, shap_reference(model, baseline, row)[0], atol=1e-9, rtol=0)
        assert body["predictions"]["data"][0][0] == pytest.approx(model.predict_proba(row[None, :])[0, 1])
    joblib.dump(model, tmp_path / "model.joblib")
    (tmp_path / "explain.json").write_text(json.dumps(config(baseline)))
    assert main(["serve", str(tmp_path / "model.joblib"), "--explain", str(tmp_path / "explain.json")]) == 2
    assert "--trust-model" in capsys.readouterr().err
