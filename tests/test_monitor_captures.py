"""Bias and attribution drift on the captures fmeval itself writes (the proxy in front of a real
model server on loopback, for CSV and JSON payloads; the runner wrapper), end to end through the CLI."""
import csv
import io
import json
import urllib.request
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fmeval.bias.analyze import analyze
from fmeval.cli import main
from fmeval.model_runners.function import FunctionRunner
from fmeval.monitoring import capture
from fmeval.monitoring.data_capture import CaptureWriter
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

    assert main(["monitor", "attribution-drift", "check", "--baseline", str(tmp_path / "b"), "--data",
                 str(tmp_path / "capture" / "drifted"), "--fail-on-violations", "-o", str(tmp_path / "check")]) == 1
    result = json.loads((tmp_path / "check" / "result.json").read_text())
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


# -- a record preprocessor ------------------------------------------------------------------------------------
PREPROCESSOR = '''
import json


def preprocess_handler(inference_record):
    """SageMaker's contract: flatten a nested request into features; [] drops the event."""
    request = json.loads(inference_record.event_data.endpointInput.data)
    if request.get("synthetic"):
        return []
    customer = request["customer"]
    return {"age": customer["age"], "city": customer["address"]["city"],
            "items": len(request["basket"]), "total": sum(item["price"] for item in request["basket"]),
            "event": inference_record.event_metadata.eventId}
'''


def nested_events(root, start, n, seed, *, price):
    import datetime as dt

    from fmeval.monitoring.data_capture import encode_body

    rng = np.random.default_rng(seed)
    writer = CaptureWriter(root, name="shop")
    sent = []
    for i in range(n):
        request = {"customer": {"age": int(rng.integers(18, 80)), "address": {"city": str(rng.choice(["oslo", "rome"]))}},
                   "basket": [{"price": float(rng.normal(price, 1))} for _ in range(int(rng.integers(1, 4)))],
                   "synthetic": bool(i % 10 == 0)}  # a load-test bot's traffic, to be dropped
        event_id = writer.write(request=encode_body(json.dumps(request).encode(), "application/json"),
                                response=encode_body(b'{"ok": 1}', "application/json"), latency_ms=1.0,
                                when=start + dt.timedelta(seconds=10 * i))
        if not request["synthetic"]:
            sent.append({"age": request["customer"]["age"], "total": sum(b["price"] for b in request["basket"]),
                         "event": event_id})
    writer.close()
    return sent


def test_a_record_preprocessor_flattens_events_only_when_trusted_and_runs_in_the_scheduler(tmp_path, capsys):
    import datetime as dt

    from fmeval.monitoring.schedules import MonitorStore, Schedule, execute

    start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    reference = nested_events(tmp_path / "capture", start, 200, 0, price=10)
    nested_events(tmp_path / "capture", start + dt.timedelta(hours=1), 200, 1, price=30)  # prices tripled
    script = tmp_path / "flatten.py"
    script.write_text(PREPROCESSOR)
    first_hour = f"{start.isoformat()}/{(start + dt.timedelta(hours=1)).isoformat()}"
    baseline = ["monitor", "data-quality", "baseline", "--data", str(tmp_path / "capture" / "shop"), "--window",
                first_hour, "--preprocessor", str(script), "-o", str(tmp_path / "base")]
    assert main(baseline) == 2  # without --trust-code the code never runs
    assert "pass --trust-code for a file you trust" in capsys.readouterr().err
    assert main([*baseline, "--trust-code"]) == 0
    statistics = json.loads((tmp_path / "base" / "statistics.json").read_text())
    features = {f["name"]: f for f in statistics["features"]}
    assert set(features) == {"age", "city", "items", "total", "event"}  # flattened (today: customer and basket dropped)
    assert statistics["dataset"]["item_count"] == len(reference) == 180  # the synthetic tenth dropped
    expected = pd.DataFrame(reference)
    assert features["total"]["numerical_statistics"]["sum"] == pytest.approx(expected["total"].sum())
    assert features["age"]["numerical_statistics"]["mean"] == pytest.approx(expected["age"].mean())
    monitor = json.loads((tmp_path / "base" / "monitor.json").read_text())["options"]
    assert monitor["trust_code"] is True and monitor["preprocessor"] == str(script.resolve())

    store = tmp_path / "store.sqlite"
    with MonitorStore(store) as monitors:
        schedule = monitors.create(Schedule(
            name="shop", kind="data-quality", baseline=str(tmp_path / "base"), capture=str(tmp_path / "capture" / "shop"),
            cron="0 * * * *", output=str(tmp_path / "executions"), start=start.isoformat()))
        from fmeval.monitoring.windows import Window

        drifted = execute(monitors, schedule, Window(start + dt.timedelta(hours=1), start + dt.timedelta(hours=2)))
        assert drifted.status == "CompletedWithViolations", drifted.reason
        result = json.loads((Path(drifted.output_dir) / "result.json").read_text())
        assert "total" in {v["feature_name"] for v in result["violations"] if v["constraint_check_type"] ==
                           "baseline_drift_check"}
        assert result["metrics"]["rows"] == 180
        script.write_text(PREPROCESSOR.replace("len(request", "1 + len(request"))  # the code changed since
        changed = execute(monitors, schedule, Window(start, start + dt.timedelta(hours=1)))
        assert changed.status == "Failed" and "changed since the baseline trusted it" in changed.reason


def test_a_features_path_that_is_not_jmespath_is_named(tmp_path):
    from fmeval.errors import UserError
    from fmeval.monitoring.data_capture import encode_body
    from fmeval.monitoring.windows import window_frame

    writer = CaptureWriter(tmp_path / "capture", name="m")
    writer.write(request=encode_body(b'{"features": [1, 2]}', "application/json"),
                 response=encode_body(b"1", "application/json"), latency_ms=1.0)
    writer.close()
    with pytest.raises(UserError, match=r"features 'features\[' is not a JMESPath expression"):
        window_frame(tmp_path / "capture" / "m", None, features="features[")
    frame = window_frame(tmp_path / "capture" / "m", None, features="features", headers=["a", "b"])
    assert frame.to_dict("records") == [{"a": 1, "b": 2, "prediction": 1}]


def test_bias_drift_with_a_predictor_on_a_proxy_capture_of_csv_requests(tmp_path):
    """Post-training bias from the model's own predictions: the predictor sees the request's six
    features only (today: the response's prediction and score too, and it crashes)."""
    from fmeval.monitoring.data_capture import read_events
    from fmeval.monitoring.proxy import build_proxy

    model = fitted_model(tmp_path / "model.joblib")
    rng = np.random.default_rng(3)
    rows = rng.normal(0, 1, (120, 6))
    rows[:, 5] = rng.integers(0, 2, 120)  # f5: a 0/1 group, the facet
    upstream, stop_upstream = serve_in_thread(model_server(model))
    proxy, stop_proxy = serve_in_thread(build_proxy(upstream, CaptureWriter(tmp_path / "capture", name="m")))
    try:
        send(proxy, rows, "csv")
    finally:
        stop_proxy()
        stop_upstream()
    ids = [event["eventMetadata"]["eventId"] for event in read_events(tmp_path / "capture" / "m")]
    labels = (rows[:, 0] > 0).astype(int)
    (tmp_path / "labels.csv").write_text("eventId,label\n" + "".join(f"{e},{y}\n" for e, y in zip(ids, labels)))
    assert main(["monitor", "ground-truth", "add", str(tmp_path / "labels.csv"), "--ground-truth",
                 str(tmp_path / "gt")]) == 0
    config = {"label": "label", "label_values_or_threshold": [1], "headers": FEATURES,
              "facet": [{"name_or_index": "f5", "value_or_threshold": [0.5]}],  # a threshold: f5 > 0.5
              "predictor": {"model_path": str(tmp_path / "model.joblib")},
              "methods": {"post_training_bias": {"methods": ["DPPL"]}}}
    (tmp_path / "bias.json").write_text(json.dumps(config))
    assert main(["monitor", "bias-drift", "baseline", "--data", str(tmp_path / "capture" / "m"), "--ground-truth",
                 str(tmp_path / "gt"), "--config", str(tmp_path / "bias.json"), "--trust-model",
                 "-o", str(tmp_path / "b")]) == 0
    constraints = json.loads((tmp_path / "b" / "constraints.json").read_text())["bias_constraints"]
    predicted = model.predict(rows)
    by_hand = predicted[rows[:, 5] == 0].mean() - predicted[rows[:, 5] == 1].mean()  # q_a - q_d
    assert constraints["post/f5=(0.5, 1.0]/DPPL"]["baseline"] == pytest.approx(by_hand)
