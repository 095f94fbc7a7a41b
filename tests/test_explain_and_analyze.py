"""KernelSHAP, partial dependence and the Clarify-compatible `fmeval analyze` job."""
import http.server
import io
import json
import threading

import joblib
import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.linear_model import LogisticRegression

from fmeval.bias.analyze import analyze
from fmeval.cli import main
from fmeval.errors import UserError
from fmeval.explain.kernel_shap import kernel_shap, row_seed
from fmeval.explain.pdp import partial_dependence


@pytest.fixture(scope="module")
def credit():
    """A small credit table: a logistic model of 'approved' from income, debt, age and years."""
    rng = np.random.default_rng(0)
    n = 160
    frame = pd.DataFrame({
        "id": [f"c{i}" for i in range(n)],
        "income": rng.normal(50, 15, n).round(1),
        "debt": rng.normal(20, 8, n).round(1),
        "age": rng.integers(20, 70, n),
        "years": rng.integers(0, 30, n),
        "gender": rng.choice(["F", "M"], n),
    })
    score = 0.08 * frame.income - 0.12 * frame.debt + 0.02 * frame.years + rng.normal(0, 1, n) - 1.0
    frame["approved"] = (score > 0).astype(int)
    model = LogisticRegression(max_iter=1000).fit(frame[["income", "debt", "age", "years"]], frame.approved)
    return frame, model


def positive_probability(model):
    return lambda rows: model.predict_proba(rows)[:, 1]


def test_shap_additivity_on_a_sklearn_model(credit):
    frame, model = credit
    X = frame[["income", "debt", "age", "years"]].to_numpy(dtype=float)
    result = kernel_shap(positive_probability(model), X[:30], background=X[:20], n_jobs=1)
    reconstructed = result.local[:, 0, :].sum(axis=1) + result.expected_value[0]
    assert np.max(np.abs(reconstructed - positive_probability(model)(X[:30]))) < 1e-6


def test_agreement_with_shap_called_directly_and_across_processes():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 9))  # 9 features and 60 samples: coalitions are sampled, so the seed matters
    weights = rng.normal(size=9)
    predict = lambda rows: np.tanh(rows @ weights)  # noqa: E731
    ours = kernel_shap(predict, X, background=X[:6], num_samples=60, seed=7, n_jobs=1)
    parallel = kernel_shap(predict, X, background=X[:6], num_samples=60, seed=7, n_jobs=2)
    explainer = shap.KernelExplainer(lambda rows: predict(rows).reshape(-1, 1), X[:6])
    direct = []
    for i, row in enumerate(X):
        np.random.seed(row_seed(7, i))
        direct.append(np.asarray(explainer.shap_values(row[None, :], nsamples=60, silent=True))[0, :, 0])
    assert np.allclose(ours.local[:, 0, :], np.array(direct), atol=1e-10)
    assert np.allclose(parallel.local, ours.local, atol=1e-12)
    assert ours.expected_value[0] == pytest.approx(float(np.mean(predict(X[:6]))))


def test_partial_dependence_equals_the_closed_form():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    predict = lambda rows: 2 * rows[:, 0] + 3 * rows[:, 1] ** 2 - rows[:, 2]  # noqa: E731
    curve = partial_dependence(predict, X, 0, grid_resolution=7)
    grid = np.linspace(X[:, 0].min(), X[:, 0].max(), 7)
    expected = 2 * grid + 3 * np.mean(X[:, 1] ** 2) - np.mean(X[:, 2])
    assert np.allclose(curve["grid"], grid) and np.allclose(curve["values"]["label0"], expected)
    binary = np.column_stack([rng.integers(0, 2, 40), rng.normal(size=40)])
    assert partial_dependence(lambda r: r[:, 0] * 5, binary, 0)["grid"] == [0.0, 1.0]  # distinct values


def write_csv(frame, path, headers=True):
    frame.to_csv(path, index=False, header=headers)
    return path


def config(**overrides):
    base = {
        "dataset_type": "text/csv",
        "headers": ["id", "income", "debt", "age", "years", "gender", "approved"],
        "label": "approved",
        "label_values_or_threshold": [1],
        "joinsource_name_or_index": "id",
        "excluded_columns": ["gender"],
        "facet": [{"name_or_index": "gender", "value_or_threshold": ["F"]}],
        "methods": {
            "pre_training_bias": {"methods": "all"},
            "post_training_bias": {"methods": ["DPPL", "DI", "AD", "RD"]},
            "shap": {"num_clusters": 5, "num_samples": 40, "agg_method": "mean_abs", "seed": 3},
            "pdp": {"top_k_features": 2, "grid_resolution": 5},
        },
    }
    base.update(overrides)
    return base


def test_analyze_end_to_end_with_a_python_model(credit, tmp_path):
    frame, model = credit
    data = write_csv(frame, tmp_path / "credit.csv", headers=False)
    result = analyze(config(), data, tmp_path / "out", model=model, n_jobs=1)
    pre = result["pre_training_bias_metrics"]["facets"]["gender"][0]
    values = {m["name"]: m["value"] for m in pre["metrics"]}
    d = (frame.gender == "F").to_numpy()
    assert values["CI"] == pytest.approx(((~d).sum() - d.sum()) / len(d))
    predicted = model.predict_proba(frame[["income", "debt", "age", "years"]])[:, 1] > 0.5
    post = {m["name"]: m["value"] for m in result["post_training_bias_metrics"]["facets"]["gender"][0]["metrics"]}
    assert post["DPPL"] == pytest.approx(predicted[~d].mean() - predicted[d].mean())
    assert list(post) == ["AD", "DI", "DPPL", "RD"]  # Clarify's order
    shap_block = result["explanations"]["kernel_shap"]["label0"]
    assert set(shap_block["global_shap_values"]) == {"income", "debt", "age", "years"}
    local = pd.read_csv(tmp_path / "out" / "explanations_shap" / "out.csv")
    assert list(local.join_id[:3]) == ["c0", "c1", "c2"] and len(local) == len(frame)
    outputs = model.predict_proba(frame[["income", "debt", "age", "years"]])[:, 1]
    reconstructed = local[["income", "debt", "age", "years"]].sum(axis=1) + shap_block["expected_value"]
    assert np.max(np.abs(reconstructed - outputs)) < 1e-6  # additivity, from the saved files
    top = sorted(shap_block["global_shap_values"], key=shap_block["global_shap_values"].get, reverse=True)[:2]
    assert [curve["feature_name"] for curve in result["explanations"]["pdp"]] == top
    assert json.loads((tmp_path / "out" / "analysis.json").read_text()) == json.loads(json.dumps(result))
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("<svg") >= 3 and "Content-Security-Policy" in page


def test_continuous_facet_threshold_and_overrides(tmp_path):
    frame = pd.DataFrame({"age": [22.0, 35.5, 41.0, 58.0, 63.5, 29.0], "y": [1, 1, 0, 0, 0, 1]})
    data = write_csv(frame, tmp_path / "d.csv")
    cfg = {"label": "y", "label_type": "categorical", "facet": [{"name_or_index": "age", "value_or_threshold": 40}],
           "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]}}}
    values = {m["name"]: m["value"] for m in analyze(cfg, data, tmp_path / "o")["pre_training_bias_metrics"]["facets"]["age"][0]["metrics"]}
    # d = age > 40: 3 rows, all negative; a: 3 rows, all positive
    assert values == pytest.approx({"CI": 0.0, "DPL": 1.0})


def test_bad_input_gives_clear_errors(credit, tmp_path):
    frame, model = credit
    data = write_csv(frame, tmp_path / "credit.csv", headers=False)
    with pytest.raises(UserError, match="no column 'sex'"):
        analyze(config(facet=[{"name_or_index": "sex", "value_or_threshold": ["F"]}]), data, tmp_path / "a", model=model)
    with pytest.raises(UserError, match=r"value\(s\) 7 never occur in column 'approved'"):
        analyze(config(label_values_or_threshold=[7]), data, tmp_path / "b", model=model)
    with pytest.raises(UserError, match="feature column 'gender' is not numeric"):
        analyze(config(excluded_columns=[]), data, tmp_path / "c", model=model)
    with pytest.raises(UserError, match="runs code from it"):
        joblib.dump(model, tmp_path / "model.joblib")
        analyze(config(predictor={"model_path": str(tmp_path / "model.joblib")}), data, tmp_path / "d")


def test_cli_with_a_trusted_model_file(credit, tmp_path, capsys):
    frame, model = credit
    joblib.dump(model, tmp_path / "model.joblib")
    write_csv(frame, tmp_path / "credit.csv", headers=True)  # a header row matching `headers` is skipped
    cfg = config(predictor={"model_path": str(tmp_path / "model.joblib")})
    cfg["methods"] = {"pre_training_bias": {"methods": ["CI"]}, "post_training_bias": {"methods": ["DI"]}}
    (tmp_path / "analysis_config.json").write_text(json.dumps(cfg))
    args = ["analyze", "--config", str(tmp_path / "analysis_config.json"), "--data", str(tmp_path / "credit.csv"),
            "--output", str(tmp_path / "out")]
    assert main(args) == 2
    assert "only loads one you trust" in capsys.readouterr().err
    assert main([*args, "--trust-model"]) == 0
    assert "post-training, gender=F: DI=" in capsys.readouterr().out


class _ModelHandler(http.server.BaseHTTPRequestHandler):
    model = None
    broken_after = None
    unavailable = 0  # the first requests get a 503
    seen = 0
    keys: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        features = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["features"]
        cls = type(self)
        cls.seen += 1
        cls.keys.append(self.headers.get("Authorization"))
        if cls.seen <= self.unavailable:
            self.send_error(503)
            return
        if self.broken_after is not None and cls.seen > self.broken_after:
            body = b'{"oops": "no score"}'
        else:
            body = json.dumps({"score": float(self.model.predict_proba([features])[0, 1])}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def model_server(credit):
    _, model = credit
    handler = type("Handler", (_ModelHandler,), {"model": model, "broken_after": None, "seen": 0, "keys": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/invocations"
    server.shutdown()
    server.server_close()


def test_http_endpoint_model_through_the_engine(credit, model_server, tmp_path, monkeypatch):
    """Retried after a 503, sent with the key from the environment (never written), cached: and a
    row whose answer stays malformed is left out of the metrics and reported, not fatal."""
    frame, model = credit
    handler, url = model_server
    monkeypatch.setenv("FMEVAL_RESPONSE_CACHE", str(tmp_path / "cache.sqlite"))
    monkeypatch.setenv("CREDIT_KEY", "sk-credit-0123456789")
    small = frame.head(30)
    data = write_csv(small, tmp_path / "d.csv", headers=False)
    cfg = config(predictor={"url": url, "content_template": '{"features": $features}', "probability": "score",
                            "api_key_env": "CREDIT_KEY", "max_retries": 1, "retry_base_delay_s": 0.0},
                 label_type="categorical")
    cfg["methods"] = {"post_training_bias": {"methods": ["DPPL"]}}
    handler.unavailable = 3
    result = analyze(cfg, data, tmp_path / "out")
    d = (small.gender == "F").to_numpy()
    predicted = model.predict_proba(small[["income", "debt", "age", "years"]])[:, 1] > 0.5
    value = result["post_training_bias_metrics"]["facets"]["gender"][0]["metrics"][0]["value"]
    assert value == pytest.approx(predicted[~d].mean() - predicted[d].mean())
    assert handler.seen == 30 + 3 and set(handler.keys) == {"Bearer sk-credit-0123456789"}
    analyze(cfg, data, tmp_path / "again")
    assert handler.seen == 33  # every answer came from the cache

    handler.broken_after, handler.unavailable, handler.seen = 20, 0, 0
    monkeypatch.setenv("FMEVAL_RESPONSE_CACHE", str(tmp_path / "fresh.sqlite"))
    result = analyze(cfg, data, tmp_path / "out2")
    failed = result["rows_with_failed_predictions"]
    assert failed["count"] == 10 and "'score' found nothing" in failed["first_error"]
    answered = ~np.isin(np.arange(30), failed["rows"])
    p, g = predicted[answered], d[answered]
    value = result["post_training_bias_metrics"]["facets"]["gender"][0]["metrics"][0]["value"]
    assert value == pytest.approx(p[~g].mean() - p[g].mean())
    assert handler.seen == 20 + 10 * 2  # each broken answer was retried once
    for written in (tmp_path / "out2").rglob("*"):
        assert "sk-credit" not in written.read_text()

    handler.broken_after, handler.seen = 0, 0
    monkeypatch.setenv("FMEVAL_RESPONSE_CACHE", str(tmp_path / "empty.sqlite"))
    with pytest.raises(UserError, match=r"30 of 30 prediction\(s\) failed; input \d+: .*'score' found nothing"):
        analyze(cfg, data, tmp_path / "out3")


def test_sagemaker_endpoint_predictor_through_stubber(tmp_path, monkeypatch):
    import boto3
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    from fmeval.bias.models import RunnerPredictor, read_numbers
    from fmeval.model_runners import load_runner

    monkeypatch.setenv("FMEVAL_RESPONSE_CACHE", str(tmp_path / "cache.sqlite"))
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    runner = load_runner("sagemaker:credit-model", content_template='{"features": $features}',
                         output="predictions[0]", client=client, max_concurrency=1)
    predict = RunnerPredictor(runner, read=read_numbers, placeholder=runner.template.placeholder)
    with Stubber(client) as stub:
        for row, value in (([1.0, 2.0], 0.2), ([3.0, 4.0], 0.9)):
            raw = json.dumps({"predictions": [value]}).encode()
            stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(raw), len(raw))},
                              {"EndpointName": "credit-model", "Body": json.dumps({"features": row}),
                               "ContentType": "application/json", "Accept": "application/json"})
        assert predict(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist() == [0.2, 0.9]
    predict.close()


def test_analysis_config_and_data_errors_name_the_problem(credit, tmp_path, capsys):
    frame, model = credit
    data = write_csv(frame, tmp_path / "credit.csv", headers=False)
    with pytest.raises(UserError, match="predictor.trusted: whether to load .* pass --trust-model"):
        analyze(config(predictor={"model_path": "m.joblib", "trusted": True}), data, tmp_path / "a")
    with pytest.raises(UserError, match="facet must be a list of objects"):
        analyze(config(facet={"name_or_index": "gender"}), data, tmp_path / "b")
    with pytest.raises(UserError, match="label_type must be categorical or continuous"):
        analyze(config(label_type="binary"), data, tmp_path / "c")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match="empty.csv: the file is empty"):
        analyze(config(), tmp_path / "empty.csv", tmp_path / "d", model=model)
    (tmp_path / "latin1.csv").write_bytes("gender,approved\nFrançoise,1\nM,0\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.csv: not valid UTF-8 .* save the file as UTF-8"):
        analyze({"label": "approved", "facet": [{"name_or_index": "gender"}],
                 "methods": {"pre_training_bias": {}}}, tmp_path / "latin1.csv", tmp_path / "e")
    holes = frame.copy()
    holes.loc[[3, 7], "debt"] = np.nan
    with pytest.raises(UserError, match=r"feature column 'debt' has 2 missing value\(s\) \(rows 3, 7\)"):
        analyze(config(), holes, tmp_path / "f", model=model)
    (tmp_path / "cfg.json").write_text('{"label": "approved",\n "facet": [}')
    assert main(["analyze", "--config", str(tmp_path / "cfg.json"), "--data", str(data), "--output",
                 str(tmp_path / "g")]) == 2
    assert "cfg.json:2: the analysis config is not JSON" in capsys.readouterr().err


def test_a_pickled_model_runs_no_code_without_trust(credit, tmp_path):
    """A model file runs code when loaded; the config alone can never make fmeval load it."""
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Payload()))
    frame, _ = credit
    data = write_csv(frame, tmp_path / "credit.csv", headers=False)
    for predictor in ({"model_path": str(tmp_path / "evil.pkl")},
                      {"model_path": str(tmp_path / "evil.pkl"), "trusted": True}):
        with pytest.raises(UserError):
            analyze(config(predictor=predictor), data, tmp_path / "out")
    assert not marker.exists()


def test_a_model_fitted_on_a_data_frame_gets_its_columns_by_name():
    import warnings

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from fmeval.bias.models import from_estimator

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    model = LogisticRegression().fit(frame, (frame.a > 0).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns "X does not have valid feature names" on bare arrays
        scores = from_estimator(model)(frame.to_numpy()[:5])
    assert scores == pytest.approx(model.predict_proba(frame.iloc[:5])[:, 1])
