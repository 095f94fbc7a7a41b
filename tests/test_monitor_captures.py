"""Bias and attribution drift on the captures fmeval itself writes (the proxy in front of a real
model server on loopback, for CSV and JSON payloads; the runner wrapper), end to end through the CLI."""
import csv
import io
import json
import urllib.request

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fmeval.bias.analyze import analyze
from fmeval.cli import main
from fmeval.model_runners.function import FunctionRunner
from fmeval.monitoring import capture
from fmeval.monitoring.data_capture import CaptureWriter
from fmeval.monitoring.monitors import check_window
from tests.support import serve_in_thread

FEATURES = [f"f{i}" for i in range(6)]
WEIGHTS = np.array([3.0, 1.5, 0.8, 0.4, 0.2, 0.1])  # a clear ranking: f0 first, f5 last


def fitted_model(path):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (500, 6))
    model = LogisticRegression().fit(x, (x @ WEIGHTS > 0).astype(int))
    joblib.dump(model, path)
    return model


def model_server(model):
    """A model server: CSV lines (text/csv) or {"features": [...]} in, {"prediction", "score"} out."""
    from aiohttp import web

    async def invocations(request):
        body = await request.text()
        if request.content_type == "text/csv":
            rows = [[float(v) for v in line] for line in csv.reader(io.StringIO(body))]
        else:
            rows = [json.loads(body)["features"]]
        score = float(model.predict_proba(np.array(rows))[0, 1])
        return web.json_response({"prediction": int(score > 0.5), "score": score})

    app = web.Application()
    app.router.add_post("/invocations", invocations)
    return app


def windows(seed):
    """40 steady rows, and 40 where f0 barely varies and f5 spreads wide (the ranking turns over)."""
    rng = np.random.default_rng(seed)
    steady = rng.normal(0, 1, (40, 6))
    drifted = rng.normal(0, 1, (40, 6)) * np.array([0.02, 1, 1, 1, 1, 40])
    return steady, drifted


def send(url, rows, payload):
    for row in rows:
        if payload == "csv":
            body, kind = ",".join(repr(float(v)) for v in row).encode(), "text/csv"
        else:
            body, kind = json.dumps({"features": [float(v) for v in row]}).encode(), "application/json"
        request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": kind})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200


SHAP = {"shap": {"num_samples": 64, "num_clusters": 5, "seed": 0, "save_local_shap_values": False}}


def reference_attributions(tmp_path, rows, model_path):
    """`fmeval analyze` on a CSV file of exactly the rows sent: the attributions the capture must give."""
    data = tmp_path / "sent.csv"
    data.write_text(",".join(FEATURES) + "\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows))
    config = {"label": None, "predictor": {"model_path": str(model_path)}, "methods": SHAP}
    result = analyze(config, data, tmp_path / "reference", trust_model=True)
    return {label: entry["global_shap_values"] for label, entry in result["explanations"]["kernel_shap"].items()}


@pytest.mark.parametrize("payload", ["csv", "json"])
def test_attribution_drift_on_proxy_captures_of_csv_and_json_requests(tmp_path, payload):
    model = fitted_model(tmp_path / "model.joblib")
    steady, drifted = windows(1)
    upstream, stop_upstream = serve_in_thread(model_server(model))
    proxies = {}
    try:
        for name in ("base", "drifted"):
            writer = CaptureWriter(tmp_path / "capture", name=name)
            from fmeval.monitoring.proxy import build_proxy

            proxies[name] = serve_in_thread(build_proxy(upstream, writer))
        send(proxies["base"][0], steady, payload)
        send(proxies["drifted"][0], drifted, payload)
    finally:
        for _, stop in proxies.values():
            stop()
        stop_upstream()
    config = {"label": None, "headers": FEATURES, "predictor": {"model_path": str(tmp_path / "model.joblib")},
              "methods": SHAP}
    if payload == "json":
        config["features"] = "features"  # a JMESPath into the request, as in Clarify's config
    (tmp_path / "attr.json").write_text(json.dumps(config))
    # today: exit 3, "X has 8 features, but LogisticRegression is expecting 6" (prediction and score fed as features)
    assert main(["monitor", "attribution-drift", "baseline", "--data", str(tmp_path / "capture" / "base"), "--config",
                 str(tmp_path / "attr.json"), "--trust-model", "-o", str(tmp_path / "b")]) == 0
    baseline = json.loads((tmp_path / "b" / "constraints.json").read_text())
    expected = reference_attributions(tmp_path, steady, tmp_path / "model.joblib")
    (label,) = expected
    got = baseline["attribution_constraints"]["global_shap_values"][label]
    assert list(got) == FEATURES  # the request's features, by the config's headers, and nothing from the response
    assert got == pytest.approx(expected[label], rel=1e-9)

    result = check_window(tmp_path / "b", tmp_path / "capture" / "drifted", None, tmp_path / "check")
    assert result["status"] == "CompletedWithViolations" and result["metrics"]["ndcg"] < 0.9
    (violation,) = result["violations"]
    assert violation["label"] == label and violation["metric_name"] == "shap"
    assert violation["constraint_check_type"] == "feature_attribution_drift_check"


def test_attribution_drift_on_the_runner_wrappers_capture(tmp_path):
    """The wrapper captures {"prompt": "<CSV line>"} and {"output": "<label>"}; `features: prompt` reads the line."""
    model = fitted_model(tmp_path / "model.joblib")
    steady, _ = windows(2)

    def classify(prompt):
        return str(int(model.predict(np.array([[float(v) for v in prompt.split(",")]]))[0]))

    wrapped = capture(FunctionRunner(classify, name="classifier"), tmp_path / "capture", name="wrapped")
    wrapped.predict([",".join(repr(float(v)) for v in row) for row in steady])
    wrapped.close()
    config = {"label": None, "headers": FEATURES, "features": "prompt",
              "predictor": {"model_path": str(tmp_path / "model.joblib")}, "methods": SHAP}
    (tmp_path / "attr.json").write_text(json.dumps(config))
    assert main(["monitor", "attribution-drift", "baseline", "--data", str(tmp_path / "capture" / "wrapped"),
                 "--config", str(tmp_path / "attr.json"), "--trust-model", "-o", str(tmp_path / "b")]) == 0
    got = json.loads((tmp_path / "b" / "constraints.json").read_text())["attribution_constraints"]["global_shap_values"]
    expected = reference_attributions(tmp_path, steady, tmp_path / "model.joblib")
    (label,) = expected
    assert list(got[label]) == FEATURES and got[label] == pytest.approx(expected[label], rel=1e-9)


def test_a_request_that_does_not_fit_the_headers_is_skipped_and_named(tmp_path, capsys):
    writer = CaptureWriter(tmp_path / "capture", name="m")
    from fmeval.monitoring.data_capture import encode_body

    ids = [writer.write(request=encode_body(b"1.0,2.0,3.0,4.0,5.0,6.0", "text/csv"),
                        response=encode_body(b'{"prediction": 1, "score": 0.9}', "application/json"), latency_ms=1.0),
           writer.write(request=encode_body(b"1.0,2.0", "text/csv"),
                        response=encode_body(b'{"prediction": 0, "score": 0.1}', "application/json"), latency_ms=1.0)]
    writer.close()
    from fmeval.monitoring.windows import window_frame
    from fmeval.monitoring.data_capture import ReadStats

    stats = ReadStats()
    frame = window_frame(tmp_path / "capture" / "m", None, headers=FEATURES, stats=stats)
    assert list(frame.index) == [ids[0]] and list(frame.columns) == [*FEATURES, "prediction", "score"]
    assert frame.attrs["response_columns"] == ["prediction", "score"]
    assert stats.skipped == [f"event {ids[1]}: the request has 2 values but the config's headers name 6"]
