"""Monitoring end to end: windows of a capture, each monitor kind on planted drift (found) and on
none (not found), schedules across a restart and a SIGKILL, alarms with a webhook and CloudWatch,
and the report in headless Chromium."""
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import joblib
import numpy as np
import pytest
from botocore.stub import ANY, Stubber
from sklearn.linear_model import LogisticRegression

from fmeval.cli import main
from fmeval.monitoring.data_capture import CaptureWriter, ReadStats, encode_body
from fmeval.monitoring.monitors import check_window, make_baseline, ndcg
from fmeval.monitoring.schedules import MonitorStore, Schedule, execute, run_due
from fmeval.monitoring.windows import Window, parse_window, prompt_response, window_events, window_frame
from tests.browser import ARTIFACTS, open_offline

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
FMEVAL = [sys.executable, "-m", "fmeval"]


def hour(k: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=k)


def capture_rows(root, rows, *, start, name="model", spacing_s=1.0, labels=None):
    """Capture one event per row (input: the row's features; output: its `prediction`), `spacing_s`
    apart from `start`; `labels`: event ids are returned for ground truth."""
    writer = CaptureWriter(root, name=name)
    ids = []
    for i, row in enumerate(rows):
        features = {k: v for k, v in row.items() if k not in ("prediction", "label")}
        ids.append(writer.write(request=encode_body(json.dumps(features).encode(), "application/json"),
                                response=encode_body(json.dumps(row["prediction"]).encode(), "application/json")
                                if "prediction" in row else encode_body(b"{}", "application/json"),
                                latency_ms=1.0, when=start + dt.timedelta(seconds=i * spacing_s)))
    writer.close()
    return ids


def tabular(n, seed, *, shift=0.0):
    rng = np.random.default_rng(seed)
    return [{"age": int(a), "income": float(x), "color": str(c)} for a, x, c in zip(
        rng.integers(18, 80, n), rng.normal(50 + shift, 10, n), rng.choice(["red", "green", "blue"], n, p=[.5, .3, .2]))]


# -- windows -------------------------------------------------------------------------------------------------
def test_a_window_reads_only_its_events_and_only_the_hour_folders_it_overlaps(tmp_path):
    capture_rows(tmp_path, tabular(30, 0), start=hour(0), spacing_s=360)  # 10 an hour, over 3 hours
    outside = tmp_path / "model" / "2026" / "03" / "01" / "07"
    outside.mkdir(parents=True)
    (outside / "corrupt.jsonl").write_text("not json\n")  # in an hour folder no window below touches
    stats = ReadStats()
    events = list(window_events(tmp_path / "model", Window(hour(1), hour(2)), stats))
    assert len(events) == 10 and stats.skipped == []
    times = [dt.datetime.fromisoformat(e["eventMetadata"]["inferenceTime"].replace("Z", "+00:00")) for e in events]
    assert min(times) == hour(1) and max(times) < hour(2)
    half = list(window_events(tmp_path / "model", parse_window("2026-03-01T00:30Z/2026-03-01T01:30Z")))
    assert len(half) == 10  # 5 from each hour: minutes 36..54 and 00..24
    hour_file = next((tmp_path / "model" / "2026" / "03" / "01" / "01").glob("*.jsonl"))
    event = json.loads(hour_file.read_text().splitlines()[0])
    event["eventMetadata"]["inferenceTime"], event["eventMetadata"]["eventId"] = "garbage", "timeless"
    with open(hour_file, "a") as handle:
        handle.write(json.dumps(event) + "\n")
    stats = ReadStats()
    assert len(list(window_events(tmp_path / "model", Window(hour(1), hour(2)), stats))) == 10
    assert stats.skipped == ["event timeless: no valid inferenceTime, so in no window"]
    stats = ReadStats()
    assert len(list(window_events(tmp_path / "model", None, stats))) == 31 and len(stats.skipped) == 1  # all, timeless too


def test_window_frames_merge_ground_truth_by_event_id(tmp_path):
    rows = [{**row, "prediction": i % 2} for i, row in enumerate(tabular(6, 1))]
    ids = capture_rows(tmp_path, rows, start=hour(0))
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"eventId": e, "label": 1}) + "\n" for e in ids[:4]))
    assert main(["monitor", "ground-truth", "add", str(labels), "--ground-truth", str(tmp_path / "gt")]) == 0
    frame = window_frame(tmp_path / "model", None, ground_truth=tmp_path / "gt")
    assert list(frame.index) == ids[:4]  # unlabelled events are left out of a labelled frame
    assert frame["prediction"].tolist() == [0, 1, 0, 1] and frame["label"].tolist() == [1, 1, 1, 1]
    assert frame["age"].tolist() == [row["age"] for row in rows[:4]]


@pytest.mark.parametrize("request_body, response_body, prompt, answer", [
    ({"model": "m", "messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "Hi?"}]},
     {"choices": [{"message": {"role": "assistant", "content": "Hello."}}]}, "Hi?", "Hello."),
    ({"model": "m", "prompt": "2+2="}, {"choices": [{"text": "4"}]}, "2+2=", "4"),
    ({"inputs": "Translate: cat"}, [{"generated_text": "chat"}], "Translate: cat", "chat"),
    ({"prompt": "q"}, {"output": "a"}, "q", "a"),  # fmeval's runner capture
])
def test_prompts_and_answers_are_read_from_the_usual_shapes(tmp_path, request_body, response_body, prompt, answer):
    event = {"captureData": {"endpointInput": encode_body(json.dumps(request_body).encode(), "application/json"),
                             "endpointOutput": encode_body(json.dumps(response_body).encode(), "application/json")},
             "eventMetadata": {"eventId": "e1"}}
    assert prompt_response(event) == {"event_id": "e1", "prompt": prompt, "response": answer}


def test_a_streamed_answer_is_read_whole():
    chunks = ["Hel", "lo", " there"]
    stream = "".join(f"data: {json.dumps({'choices': [{'delta': {'content': c}}]})}\n\n" for c in chunks) + "data: [DONE]\n\n"
    event = {"captureData": {"endpointInput": encode_body(b'{"messages": [{"role": "user", "content": "hi"}]}',
                                                          "application/json"),
                             "endpointOutput": encode_body(stream.encode(), "text/event-stream")},
             "eventMetadata": {"eventId": "e2"}}
    assert prompt_response(event)["response"] == "Hello there"


def test_the_capture_function_is_not_shadowed_by_a_submodule():
    import importlib
    import pkgutil

    import fmeval.monitoring

    for module in pkgutil.iter_modules(fmeval.monitoring.__path__):
        importlib.import_module(f"fmeval.monitoring.{module.name}")
    from fmeval.monitoring import capture

    assert callable(capture) and capture.__module__ == "fmeval.monitoring"


# -- data quality over capture windows, through the CLI ------------------------------------------------------------
def three_hours(root, start=T0):
    """Hours 0 and 1 like the baseline, hour 2 with income shifted and a new colour (1000 rows an hour)."""
    capture_rows(root, tabular(1000, 1), start=start, spacing_s=3.6)
    capture_rows(root, tabular(1000, 2), start=start + dt.timedelta(hours=1), spacing_s=3.6)
    drifted = tabular(1000, 3, shift=15.0)
    for row in drifted[::2]:
        row["color"] = "violet"
    capture_rows(root, drifted, start=start + dt.timedelta(hours=2), spacing_s=3.6)


def hours_ago(n):
    """The start of the hour n hours before the current one: a schedule from there has n ended windows."""
    now = dt.datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=n)


def test_data_quality_windows_of_a_capture_through_the_cli(tmp_path, capsys):
    reference = tmp_path / "reference.csv"
    import pandas as pd

    pd.DataFrame(tabular(2000, 0)).to_csv(reference, index=False)
    three_hours(tmp_path / "capture")
    assert main(["monitor", "data-quality", "baseline", "--data", str(reference), "-o", str(tmp_path / "base")]) == 0
    same = ["monitor", "data-quality", "check", "--baseline", str(tmp_path / "base"), "--data",
            str(tmp_path / "capture" / "model"), "--fail-on-violations"]
    assert main([*same, "--window", "2026-03-01T01:00Z/2026-03-01T02:00Z", "-o", str(tmp_path / "w1")]) == 0
    assert json.loads((tmp_path / "w1" / "result.json").read_text())["metrics"]["rows"] == 1000
    assert main([*same, "--window", "2026-03-01T02:00Z/2026-03-01T03:00Z", "-o", str(tmp_path / "w2")]) == 1
    result = json.loads((tmp_path / "w2" / "result.json").read_text())
    checks = {(v["feature_name"], v["constraint_check_type"]) for v in result["violations"]}
    assert ("color", "categorical_values_check") in checks and ("income", "baseline_drift_check") in checks
    assert result["metrics"]["drifted_columns"] == 2  # income (Wasserstein) and color (Jensen-Shannon); age did not move
    assert main([*same, "--window", "2026-03-01T05:00Z/2026-03-01T06:00Z", "-o", str(tmp_path / "w3")]) == 0
    assert "NoData: no data in window 2026-03-01T05:00:00Z/2026-03-01T06:00:00Z" in capsys.readouterr().out
    # the wrong kind of baseline is a clear error, exit 2
    assert main(["monitor", "model-quality", "check", "--baseline", str(tmp_path / "base"), "--data",
                 str(reference), "-o", str(tmp_path / "w4")]) == 2
    assert "is a data-quality baseline" in capsys.readouterr().err


# -- model quality ------------------------------------------------------------------------------------------------
def labelled(n, seed, *, accuracy):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    right = rng.random(n) < accuracy
    predictions = np.where(right, labels, 1 - labels)
    return [{"x": float(v), "prediction": int(p), "label": int(t)} for v, p, t in zip(rng.random(n), predictions, labels)]


def test_model_quality_on_captured_predictions_with_ground_truth(tmp_path, capsys):
    capture = tmp_path / "capture"
    rows = labelled(600, 1, accuracy=0.9) + labelled(600, 2, accuracy=0.9) + labelled(600, 3, accuracy=0.65)
    ids = capture_rows(capture, rows, start=hour(0), spacing_s=6)  # 600 an hour
    (tmp_path / "labels.csv").write_text("eventId,label\n" + "".join(f"{e},{r['label']}\n" for e, r in zip(ids, rows)))
    assert main(["monitor", "ground-truth", "add", str(tmp_path / "labels.csv"), "--ground-truth", str(tmp_path / "gt")]) == 0
    assert main(["monitor", "model-quality", "baseline", "--data", str(capture / "model"), "--ground-truth",
                 str(tmp_path / "gt"), "--window", "2026-03-01T00:00Z/2026-03-01T01:00Z", "--problem-type", "binary",
                 "-o", str(tmp_path / "base")]) == 0
    check = ["monitor", "model-quality", "check", "--baseline", str(tmp_path / "base"), "--data", str(capture / "model"),
             "--ground-truth", str(tmp_path / "gt"), "--fail-on-violations"]
    assert main([*check, "--window", "2026-03-01T01:00Z/2026-03-01T02:00Z", "-o", str(tmp_path / "ok")]) == 0
    assert main([*check, "--window", "2026-03-01T02:00Z/2026-03-01T03:00Z", "-o", str(tmp_path / "bad")]) == 1
    result = json.loads((tmp_path / "bad" / "result.json").read_text())
    assert {v["metric_name"] for v in result["violations"]} >= {"accuracy", "f1"}
    truth = np.array([r["label"] for r in rows[1200:]])
    predicted = np.array([r["prediction"] for r in rows[1200:]])
    assert result["metrics"]["accuracy"] == pytest.approx((truth == predicted).mean())


# -- bias drift ---------------------------------------------------------------------------------------------------
def loan_rows(n, seed, *, favour_men):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        gender = str(rng.choice(["m", "f"]))
        label = int(rng.random() < 0.5)
        approve = 0.5 + (0.3 if gender == "m" else -0.3) * favour_men
        rows.append({"gender": gender, "income": float(rng.normal(50, 10)), "label": label,
                     "prediction": int(rng.random() < approve)})
    return rows


BIAS_CONFIG = {"label": "label", "predicted_label_name_or_index": "prediction", "label_values_or_threshold": [1],
               "facet": [{"name_or_index": "gender", "value_or_threshold": ["f"]}],
               "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]},
                           "post_training_bias": {"methods": ["DPPL", "DI"]}},
               "thresholds": {"DPPL": [-0.1, 0.1]}}


def test_bias_drift_finds_predictions_that_turn_against_a_group(tmp_path):
    capture = tmp_path / "capture"
    rows = loan_rows(400, 1, favour_men=0) + loan_rows(400, 2, favour_men=0) + loan_rows(400, 3, favour_men=1)
    ids = capture_rows(capture, rows, start=hour(0), spacing_s=9)  # 400 an hour
    (tmp_path / "labels.csv").write_text("eventId,label\n" + "".join(f"{e},{r['label']}\n" for e, r in zip(ids, rows)))
    main(["monitor", "ground-truth", "add", str(tmp_path / "labels.csv"), "--ground-truth", str(tmp_path / "gt")])
    (tmp_path / "config.json").write_text(json.dumps(BIAS_CONFIG))
    assert main(["monitor", "bias-drift", "baseline", "--data", str(capture / "model"), "--ground-truth",
                 str(tmp_path / "gt"), "--window", "2026-03-01T00:00Z/2026-03-01T01:00Z", "--config",
                 str(tmp_path / "config.json"), "-o", str(tmp_path / "base")]) == 0
    constraints = json.loads((tmp_path / "base" / "constraints.json").read_text())["bias_constraints"]
    assert constraints["post/gender=f/DPPL"]["lower_bound"] == -0.1  # from the config's range
    assert constraints["pre/gender=f/CI"]["from"] == "baseline ± 0.1"
    fine = check_window(tmp_path / "base", capture / "model", Window(hour(1), hour(2)), tmp_path / "fine",
                        ground_truth=tmp_path / "gt")
    assert fine["status"] == "Completed", fine["violations"]
    drifted = check_window(tmp_path / "base", capture / "model", Window(hour(2), hour(3)), tmp_path / "drifted",
                           ground_truth=tmp_path / "gt")
    # DPPL leaves the config's range; DI (no range in the config) leaves its baseline's ± 0.1; the labels,
    # hence the pre-training metrics, did not change
    assert sorted(v["metric_name"] for v in drifted["violations"]) == ["DI", "DPPL"]
    window = rows[800:]
    men = [r["prediction"] for r in window if r["gender"] == "m"]
    women = [r["prediction"] for r in window if r["gender"] == "f"]
    assert drifted["metrics"]["post/gender=f/DPPL"] == pytest.approx(np.mean(men) - np.mean(women))


def test_bias_drift_alarms_only_on_moves_away_from_the_ideal_and_names_them(tmp_path):
    # a biased baseline (DI about 0.54), then a fairer window, a worse one, and one biased the other way
    rows = [*loan_rows(400, 4, favour_men=0.5), *loan_rows(400, 5, favour_men=0), *loan_rows(400, 6, favour_men=1),
            *loan_rows(400, 7, favour_men=-0.5)]
    capture = tmp_path / "capture"
    ids = capture_rows(capture, rows, start=hour(0), spacing_s=9)
    (tmp_path / "labels.csv").write_text("eventId,label\n" + "".join(f"{e},{r['label']}\n" for e, r in zip(ids, rows)))
    main(["monitor", "ground-truth", "add", str(tmp_path / "labels.csv"), "--ground-truth", str(tmp_path / "gt")])
    config = {**BIAS_CONFIG, "methods": {"post_training_bias": {"methods": ["DPPL", "DI"]}}, "thresholds": {}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["monitor", "bias-drift", "baseline", "--data", str(capture / "model"), "--ground-truth",
                 str(tmp_path / "gt"), "--window", "2026-03-01T00:00Z/2026-03-01T01:00Z", "--config",
                 str(tmp_path / "config.json"), "-o", str(tmp_path / "base")]) == 0
    constraints = json.loads((tmp_path / "base" / "constraints.json").read_text())["bias_constraints"]
    assert 0.4 < constraints["post/gender=f/DI"]["baseline"] < 0.7 and constraints["post/gender=f/DI"]["ideal"] == 1

    def check(k):
        return check_window(tmp_path / "base", capture / "model", Window(hour(k), hour(k + 1)), tmp_path / f"w{k}",
                            ground_truth=tmp_path / "gt")

    fairer, worse, reversed_ = check(1), check(2), check(3)
    # today: both metrics alarm on the fairer window too (outside baseline ± 0.1 either way)
    assert abs(fairer["metrics"]["post/gender=f/DPPL"]) < 0.1 and fairer["violations"] == []
    assert sorted(v["metric_name"] for v in worse["violations"]) == ["DI", "DPPL"]
    di = next(v for v in worse["violations"] if v["metric_name"] == "DI")
    assert (di["facet"], di["facet_value"], di["constraint_check_type"]) == ("gender", "f", "bias_drift_check")
    assert "fell to" in di["description"] and "further from its ideal 1" in di["description"]
    # biased the other way, further from the ideal than the baseline: DI rose, DPPL fell
    directions = {v["metric_name"]: v["description"] for v in reversed_["violations"]}
    assert "rose to" in directions["DI"] and "fell to" in directions["DPPL"]
    written = json.loads((tmp_path / "w2" / "constraint_violations.json").read_text())
    assert written["version"] == "1.0" and "feature_name" not in written["violations"][0]


def test_bias_drift_needs_its_bootstrap_interval_past_the_baseline(tmp_path):
    base, small = loan_rows(400, 11, favour_men=0.3), loan_rows(40, 17, favour_men=0.3)  # one population
    capture = tmp_path / "capture"
    ids = capture_rows(capture, base, start=hour(0), spacing_s=9) + capture_rows(capture, small, start=hour(1),
                                                                                 spacing_s=60)
    rows = base + small
    (tmp_path / "labels.csv").write_text("eventId,label\n" + "".join(f"{e},{r['label']}\n" for e, r in zip(ids, rows)))
    main(["monitor", "ground-truth", "add", str(tmp_path / "labels.csv"), "--ground-truth", str(tmp_path / "gt")])
    config = {**BIAS_CONFIG, "label_type": "categorical", "methods": {"post_training_bias": {"methods": ["DPPL"]}},
              "thresholds": {}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    baseline = ["monitor", "bias-drift", "baseline", "--data", str(capture / "model"), "--ground-truth",
                str(tmp_path / "gt"), "--window", "2026-03-01T00:00Z/2026-03-01T01:00Z", "--config",
                str(tmp_path / "config.json")]
    assert main([*baseline, "-o", str(tmp_path / "base")]) == 0
    assert main([*baseline, "--n-bootstrap", "0", "-o", str(tmp_path / "points")]) == 0

    def dppl(window):
        men = [r["prediction"] for r in window if r["gender"] == "m"]
        women = [r["prediction"] for r in window if r["gender"] == "f"]
        return np.mean(men) - np.mean(women) if men and women else None

    key = "post/gender=f/DPPL"
    assert dppl(small) > dppl(base) + 0.1  # the small window's value alone looks worse than the baseline ± 0.1
    by_points = check_window(tmp_path / "points", capture / "model", Window(hour(1), hour(2)), tmp_path / "p",
                             ground_truth=tmp_path / "gt")
    assert [v["metric_name"] for v in by_points["violations"]] == ["DPPL"]  # today's rule: a false alarm
    checked = check_window(tmp_path / "base", capture / "model", Window(hour(1), hour(2)), tmp_path / "c",
                           ground_truth=tmp_path / "gt")
    assert checked["violations"] == [] and checked["metrics"][key] == pytest.approx(dppl(small))
    # the interval by hand: the same seeded resamples of the window's rows, DPPL computed directly
    rng = np.random.default_rng(0)
    resampled = [dppl([small[i] for i in rng.integers(0, len(small), len(small))]) for _ in range(200)]
    low, high = np.percentile([v for v in resampled if v is not None], [2.5, 97.5])
    assert checked["confidence_intervals"][key] == pytest.approx([low, high])
    assert low < dppl(base) < high  # the baseline's value is inside: noise, not drift


def test_bias_drift_of_a_group_of_one_row_is_undecided_not_an_alarm(tmp_path, capsys):
    """One woman among 40 rows, her loan refused, every man's approved: DPPL 1, DI 0. A third of the resamples
    hold no woman, so no interval was made, and the window alarmed on the point values alone, though one row
    tells nothing. Now it is undecided, with the reason, and no violation."""
    import pandas as pd

    rows = loan_rows(1000, 21, favour_men=0)
    pd.DataFrame(rows).to_csv(tmp_path / "base.csv", index=False)
    window = [{"gender": "m", "income": 50.0, "label": i % 2, "prediction": 1} for i in range(39)]
    pd.DataFrame([*window, {"gender": "f", "income": 50.0, "label": 1, "prediction": 0}]).to_csv(
        tmp_path / "one.csv", index=False)
    config = {**BIAS_CONFIG, "label_type": "categorical", "methods": {"post_training_bias": {"methods": ["DPPL", "DI"]}},
              "thresholds": {}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["monitor", "bias-drift", "baseline", "--data", str(tmp_path / "base.csv"), "--config",
                 str(tmp_path / "config.json"), "-o", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["monitor", "bias-drift", "check", "--baseline", str(tmp_path / "b"), "--data", str(tmp_path / "one.csv"),
                 "-o", str(tmp_path / "c"), "--fail-on-violations"]) == 0
    result = json.loads((tmp_path / "c" / "result.json").read_text())
    assert result["metrics"]["post/gender=f/DPPL"] == 1 and result["violations"] == []
    assert set(result["undecided"]) == {"post/gender=f/DPPL", "post/gender=f/DI"}
    assert "no verdict" in result["undecided"]["post/gender=f/DI"] and "undecided" in capsys.readouterr().out


# -- feature-attribution drift ---------------------------------------------------------------------------------------
def test_attribution_drift_ranks_features_as_model_monitor_does(tmp_path):
    # Model Monitor's example: same order -> 1; the top two swapped -> below 1, by hand:
    base = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert ndcg(base, {"a": 9, "b": 5, "c": 1}) == 1.0
    ideal = 0.5 + 0.3 / np.log2(3) + 0.2 / 2
    assert ndcg(base, {"a": 0.3, "b": 0.5, "c": 0.2}) == pytest.approx((0.3 + 0.5 / np.log2(3) + 0.2 / 2) / ideal)

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (400, 3))
    y = (2 * x[:, 0] + x[:, 1] + 0.3 * x[:, 2] > 0).astype(int)
    joblib.dump(LogisticRegression().fit(x, y), tmp_path / "model.joblib")
    scale = {"steady": [1.0, 1.0, 1.0], "drifted": [0.05, 1.0, 6.0]}  # x0 nearly constant, x2 spread wide
    capture = tmp_path / "capture"
    for k, name in enumerate(("steady", "steady", "drifted")):
        rows = [{"x0": float(a), "x1": float(b), "x2": float(c)}
                for a, b, c in rng.normal(0, 1, (40, 3)) * np.array(scale[name])]
        capture_rows(capture, rows, start=hour(k), spacing_s=60)
    config = {"label": None, "headers": ["x0", "x1", "x2"], "predictor": {"model_path": str(tmp_path / "model.joblib")},
              "methods": {"shap": {"num_samples": 64, "num_clusters": 5, "save_local_shap_values": False}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["monitor", "attribution-drift", "baseline", "--data", str(capture / "model"), "--window",
                 "2026-03-01T00:00Z/2026-03-01T01:00Z", "--config", str(tmp_path / "config.json"), "--trust-model",
                 "-o", str(tmp_path / "base")]) == 0
    steady = check_window(tmp_path / "base", capture / "model", Window(hour(1), hour(2)), tmp_path / "steady")
    drifted = check_window(tmp_path / "base", capture / "model", Window(hour(2), hour(3)), tmp_path / "drifted")
    assert steady["status"] == "Completed" and steady["metrics"]["ndcg"] >= 0.9
    assert drifted["status"] == "CompletedWithViolations" and drifted["metrics"]["ndcg"] < 0.9
    assert drifted["violations"][0]["constraint_check_type"] == "feature_attribution_drift_check"
    current = next(iter(drifted["attributions"].values()))
    assert sorted(current, key=lambda name: -abs(current[name])) == ["x2", "x1", "x0"]  # the baseline's, reversed


# -- LLM outputs through the capture --------------------------------------------------------------------------------
def chat_events(root, start, answers, prompts):
    writer = CaptureWriter(root, name="llm")
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        request = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
        response = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
        writer.write(request=encode_body(json.dumps(request).encode(), "application/json"),
                     response=encode_body(json.dumps(response).encode(), "application/json"),
                     latency_ms=1.0, when=start + dt.timedelta(seconds=10 * i))
    writer.close()


def llm_traffic(n, seed, *, refusals):
    rng = np.random.default_rng(seed)
    words = "the model answers questions about history science and art with care and detail".split()
    prompts = [f"Please tell me about topic number {int(rng.integers(1, 10**6))} in a few sentences" for _ in range(n)]
    answers = ["I'm sorry, but I can't help with that." if rng.random() < refusals else
               " ".join(rng.choice(words, int(rng.integers(25, 35)))) for _ in range(n)]
    return answers, prompts


def test_llm_output_monitor_on_captured_chat_traffic(tmp_path):
    capture = tmp_path / "capture"
    chat_events(capture, hour(0), *llm_traffic(300, 0, refusals=0.02))
    chat_events(capture, hour(1), *llm_traffic(300, 1, refusals=0.02))
    chat_events(capture, hour(2), *llm_traffic(300, 2, refusals=0.3))
    assert main(["monitor", "llm-outputs", "baseline", "--data", str(capture / "llm"), "--window",
                 "2026-03-01T00:00Z/2026-03-01T01:00Z", "-o", str(tmp_path / "base")]) == 0
    fine = check_window(tmp_path / "base", capture / "llm", Window(hour(1), hour(2)), tmp_path / "fine")
    assert fine["status"] == "Completed", fine["violations"]
    # ground truth added for the window: the reference-based metrics appear (half the answers are right)
    events = list(window_events(capture / "llm", Window(hour(1), hour(2))))
    truth = [{"eventId": e["eventMetadata"]["eventId"],
              "label": prompt_response(e)["response"] if i % 2 == 0 else "something else entirely"}
             for i, e in enumerate(events)]
    (tmp_path / "truth.jsonl").write_text("".join(json.dumps(row) + "\n" for row in truth))
    assert main(["monitor", "ground-truth", "add", str(tmp_path / "truth.jsonl"), "--ground-truth",
                 str(tmp_path / "gt")]) == 0
    graded = check_window(tmp_path / "base", capture / "llm", Window(hour(1), hour(2)), tmp_path / "graded",
                          ground_truth=tmp_path / "gt")
    assert graded["metrics"]["exact_match"] == pytest.approx(0.5)
    drifted = check_window(tmp_path / "base", capture / "llm", Window(hour(2), hour(3)), tmp_path / "drifted")
    assert "refusal" in {v["metric_name"] for v in drifted["violations"]}
    assert drifted["metrics"]["refusal"] == pytest.approx(0.3, abs=0.06)


# -- schedules, alarms, the report -------------------------------------------------------------------------------
@pytest.fixture
def dq_baseline(tmp_path):
    import pandas as pd

    pd.DataFrame(tabular(2000, 0)).to_csv(tmp_path / "reference.csv", index=False)
    make_baseline("data-quality", {"data": tmp_path / "reference.csv"}, tmp_path / "base")
    return tmp_path / "base"


def executions_by_window(store_path, name):
    with sqlite3.connect(store_path) as connection:
        return connection.execute("SELECT window_start, status, claimed_by FROM monitoring_executions "
                                  "WHERE schedule = ? ORDER BY window_start", (name,)).fetchall()


def test_a_schedule_runs_missed_windows_once_across_restarts_and_alarms(tmp_path, dq_baseline, webhook, capsys):
    url, received = webhook
    start = hours_ago(4)
    three_hours(tmp_path / "capture", start)  # and an hour with no traffic
    store = tmp_path / "store.sqlite"
    assert main(["monitor", "schedule", "create", "hourly", "--baseline", str(dq_baseline), "--capture",
                 str(tmp_path / "capture" / "model"), "--cron", "0 * * * *", "--start", start.isoformat(),
                 "--output", str(tmp_path / "executions"), "--alarm", "drifted_columns >= 1", "--webhook", url,
                 "--store", str(store), "--create"]) == 0
    env = {**os.environ, "FMEVAL_STORE": str(store)}
    first = subprocess.run([*FMEVAL, "monitor", "scheduler", "--once"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr
    rows = executions_by_window(store, "hourly")
    assert [status for _, status, _ in rows] == ["Completed", "Completed", "CompletedWithViolations", "NoData"]
    again = subprocess.run([*FMEVAL, "monitor", "scheduler", "--once"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    # a restart runs none of them again (only an hour that ended meanwhile, if the clock struck)
    assert executions_by_window(store, "hourly")[:4] == rows and len(executions_by_window(store, "hourly")) <= 5
    # actions fire on changes of state only: OK after hour 0, ALARM at hour 2, and the empty hour is missing
    # data, which takes a 1-of-1 alarm to INSUFFICIENT_DATA under CloudWatch's "missing" treatment
    assert [hook["NewStateValue"] for hook in received[:3]] == ["OK", "ALARM", "INSUFFICIENT_DATA"]
    assert received[1]["Execution"]["Status"] == "CompletedWithViolations" and received[1]["Monitor"] == "hourly"
    assert received[1]["Execution"]["WindowStart"].startswith((start + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S"))
    # run by hand (CI): the drifted hour again exits 1 while the alarm is in ALARM
    drifted = f"{(start + dt.timedelta(hours=2)).isoformat()}/{(start + dt.timedelta(hours=3)).isoformat()}"
    steady = f"{(start + dt.timedelta(hours=1)).isoformat()}/{(start + dt.timedelta(hours=2)).isoformat()}"
    code = main(["monitor", "run", "hourly", "--window", drifted, "--store", str(store)])
    assert code == 2 and "has an execution already" in capsys.readouterr().err
    assert main(["monitor", "run", "hourly", "--window", drifted, "--rerun", "--store", str(store)]) == 1
    assert main(["monitor", "run", "hourly", "--window", steady, "--rerun", "--store", str(store)]) == 0


def test_a_scheduler_killed_mid_execution_resumes_without_losing_or_repeating_a_window(tmp_path, dq_baseline):
    start = hours_ago(24)
    for k in range(24):
        capture_rows(tmp_path / "capture", tabular(300, k), start=start + dt.timedelta(hours=k), spacing_s=10)
    store = tmp_path / "store.sqlite"
    with MonitorStore(store) as monitor_store:
        monitor_store.create(Schedule(name="day", kind="data-quality", baseline=str(dq_baseline),
                                      capture=str(tmp_path / "capture" / "model"), cron="0 * * * *",
                                      output=str(tmp_path / "executions"), start=start.isoformat()))
    env = {**os.environ, "FMEVAL_STORE": str(store)}
    process = subprocess.Popen([*FMEVAL, "monitor", "scheduler", "--poll-seconds", "60"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = executions_by_window(store, "day") if store.exists() else []
        if sum(status != "InProgress" for _, status, _ in rows) >= 3 and rows[-1][1] == "InProgress":
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = executions_by_window(store, "day")
    interrupted = [start for start, status, _ in before if status == "InProgress"]
    assert len(interrupted) == 1 and len(before) < 24, before
    done = subprocess.run([*FMEVAL, "monitor", "scheduler", "--once"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    after = executions_by_window(store, "day")
    starts = [start for start, _, _ in after]
    assert len(starts) == len(set(starts))  # one execution per window
    assert [(start + dt.timedelta(hours=k)).isoformat() for k in range(24)] == starts[:24]  # none lost
    assert all(status == "Completed" for _, status, _ in after[:24])
    claimers_before, claimers_after = ({s: c for s, _, c in rows} for rows in (before, after))
    assert claimers_after[interrupted[0]] != claimers_before[interrupted[0]]  # taken over from the killed process
    # the windows finished before the kill were not run again
    finished_before = {(s, c) for s, status, c in before if status != "InProgress"}
    assert finished_before <= {(s, c) for s, _, c in after}


def test_each_execution_sends_its_metrics_to_cloudwatch(tmp_path, dq_baseline):
    import boto3

    three_hours(tmp_path / "capture")
    client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with MonitorStore(tmp_path / "store.sqlite") as store:
        schedule = store.create(Schedule(name="cw", kind="data-quality", baseline=str(dq_baseline),
                                         capture=str(tmp_path / "capture" / "model"), cron="0 * * * *",
                                         output=str(tmp_path / "out"), start=T0.isoformat(),
                                         actions={"cloudwatch_namespace": "fmeval/monitoring"}))
        with Stubber(client) as stub:
            stub.add_response("put_metric_data", {}, {"Namespace": "fmeval/monitoring", "MetricData": ANY})
            execution = execute(store, schedule, Window(hour(2), hour(3)), cloudwatch_client=client)
            stub.assert_no_pending_responses()
    sent = execution.alarms["_cloudwatch"]["sent"]
    assert sent == len(execution.metrics) and execution.metrics["drifted_columns"] == 2


def test_the_report_in_headless_chromium(tmp_path, dq_baseline, browser):
    three_hours(tmp_path / "capture")
    evil = tabular(50, 9)
    for row in evil:
        row["color"] = '<img src=x onerror="window.__pwned = 1">'
    capture_rows(tmp_path / "capture", evil, start=hour(3), spacing_s=30)
    with MonitorStore(tmp_path / "store.sqlite") as store:
        store.create(Schedule(name="report", kind="data-quality", baseline=str(dq_baseline),
                              capture=str(tmp_path / "capture" / "model"), cron="0 * * * *", output=str(tmp_path / "out"),
                              start=T0.isoformat(), alarms=[{"name": "drift", "metric": "drifted_columns",
                                                             "comparison": "GreaterThanOrEqualToThreshold",
                                                             "threshold": 1.0}]))
        run_due(store, now=hour(5))
    assert main(["monitor", "report", "report", "--output", str(tmp_path / "report.html"), "--store",
                 str(tmp_path / "store.sqlite")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [row["status"] for row in report["executions"]] == ["Completed", "Completed", "CompletedWithViolations",
                                                               "CompletedWithViolations", "NoData"]
    page, requests, dialogs = open_offline(browser, tmp_path / "report.html")
    assert requests == [(tmp_path / "report.html").as_uri()] and dialogs == []
    assert page.evaluate("window.__pwned") is None and page.query_selector_all("img") == []
    assert '<img src=x onerror="window.__pwned = 1">' in page.inner_text("body")  # shown as text
    charts = page.query_selector_all("svg.chart")
    assert len(charts) == len(report["series"]) + len(report["distributions"]["features"])
    drifted_columns = page.query_selector('svg[aria-label="drifted_columns"]')
    assert len(drifted_columns.query_selector_all("circle")) == 4  # four windows with data; the empty one is a gap
    assert drifted_columns.query_selector_all("line.threshold")  # the alarm's threshold, drawn
    assert page.query_selector('svg[aria-label="feature_baseline_drift_income"] line.threshold')  # the constraint's
    rows = page.query_selector_all("h2:has-text('Violations') + table tr")
    assert len(rows) - 1 == len(report["violations"]) > 0
    # the alarm went to ALARM at the drifted hours, and the empty last hour left it without data
    assert "drift: ALARM" in page.inner_text("h2:has-text('Executions') + table")
    assert page.query_selector("td.INSUFFICIENT_DATA")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "monitor-report.png"), full_page=True)


def test_the_llm_report_draws_baselines_hides_paths_and_has_a_page_per_window(tmp_path, browser):
    refusals = (0.02, 0.02, 0.1, 0.3)
    traffic = [llm_traffic(60, k, refusals=rate) for k, rate in enumerate(refusals)]
    for k, (answers, prompts) in enumerate(traffic):
        chat_events(tmp_path / "capture", hour(k), answers, prompts)
    assert main(["monitor", "llm-outputs", "baseline", "--data", str(tmp_path / "capture" / "llm"), "--window",
                 "2026-03-01T00:00Z/2026-03-01T01:00Z", "-o", str(tmp_path / "base")]) == 0
    with MonitorStore(tmp_path / "store.sqlite") as store:
        store.create(Schedule(name="llm", kind="llm-outputs", baseline=str(tmp_path / "base"),
                              capture=str(tmp_path / "capture" / "llm"), cron="0 * * * *",
                              output=str(tmp_path / "out"), start=hour(1).isoformat()))
        run_due(store, now=hour(4))
    report_file = tmp_path / "reports" / "llm.html"
    assert main(["monitor", "report", "llm", "--output", str(report_file), "--store", str(tmp_path / "store.sqlite")]) == 0

    def refused(answers):
        return sum(answer.startswith("I'm sorry") for answer in answers) / len(answers)

    page, requests, dialogs = open_offline(browser, report_file)
    header = page.inner_text("h1 + p")
    assert str(tmp_path) not in page.content() and "capture ../capture/llm, baseline ../base" in header  # today: absolute
    assert page.query_selector_all("script") == [] and dialogs == []
    chart = page.query_selector('svg[aria-label="refusal"]')
    baseline_line = chart.query_selector("line.baseline")  # today: none, each chart only its dots
    assert baseline_line.text_content() == f"baseline {refused(traffic[0][0]):.4g}"
    dots = [float(dot.text_content().split(": ")[1]) for dot in chart.query_selector_all("circle")]
    assert dots == pytest.approx([refused(answers) for answers, _ in traffic[1:]], abs=1e-4)
    # every window has its own page, linked from the executions (today: the latest window's distributions only)
    links = page.query_selector_all("h2:has-text('Executions') + table a")
    assert len(links) == 3
    links[0].click()
    page.wait_for_load_state("load")
    assert page.url == (tmp_path / "reports" / "llm-windows" / "2026-03-01T010000Z_2026-03-01T020000Z.html").as_uri()
    assert "window 2026-03-01T01:00:00Z/2026-03-01T02:00:00Z" in page.inner_text("h1")
    shares = {bar.text_content() for bar in page.query_selector_all('svg[aria-label="refusal"] rect')}
    assert f"refused: current {refused(traffic[1][0]):.1%}" in shares
    assert f"refused: baseline {refused(traffic[0][0]):.1%}" in shares
    assert page.query_selector_all("script") == [] and all(url.startswith("file://") for url in requests)
    page.click("text=next window")
    page.wait_for_load_state("load")
    assert "window 2026-03-01T02:00:00Z/2026-03-01T03:00:00Z" in page.inner_text("h1")
    page.click("text=the report")
    page.wait_for_load_state("load")
    assert page.url == report_file.as_uri()


def test_executions_are_claimed_once_on_sqlite_and_postgresql(store_url, tmp_path, dq_baseline):
    (tmp_path / "capture").mkdir()
    with MonitorStore(store_url) as store:
        schedule = store.create(Schedule(name=f"claims-{os.getpid()}", kind="", baseline=str(dq_baseline),
                                         capture=str(tmp_path / "capture"), cron="0 * * * *",
                                         output=str(tmp_path / "out"), start=T0.isoformat()))
        assert schedule.kind == "data-quality"  # read from the baseline
        window = Window(hour(0), hour(1))
        first = store.claim(schedule, window)
        assert first is not None and store.claim(schedule, window) is None  # running here, alive
        store.finish(first, status="Completed", reason=None, metrics={"rows": 3.0, "bad": float("nan")}, violations=0)
        assert store.execution(first).metrics == {"rows": 3.0, "bad": None}  # NaN: a missing datapoint
        assert store.claim(schedule, window) is None and store.claim(schedule, window, rerun=True) == first
        assert store.execution(first).status == "InProgress" and store.execution(first).metrics == {}
        with pytest.raises(Exception, match="exists"):
            store.create(Schedule(name=schedule.name, kind="", baseline=str(dq_baseline), capture=str(tmp_path),
                                  cron="0 * * * *", output=str(tmp_path), start=T0.isoformat()))
        assert [s.name for s in store.list() if s.name == schedule.name] == [schedule.name]
        store.delete(schedule.name)
        assert store.executions(schedule.name) == []


def test_two_schedulers_at_once_run_each_window_once(tmp_path, dq_baseline):
    start = hours_ago(6)
    for k in range(6):
        capture_rows(tmp_path / "capture", tabular(300, k), start=start + dt.timedelta(hours=k), spacing_s=10)
    store = tmp_path / "store.sqlite"
    with MonitorStore(store) as monitor_store:
        monitor_store.create(Schedule(name="twice", kind="data-quality", baseline=str(dq_baseline),
                                      capture=str(tmp_path / "capture" / "model"), cron="0 * * * *",
                                      output=str(tmp_path / "executions"), start=start.isoformat()))
    env = {**os.environ, "FMEVAL_STORE": str(store)}
    processes = [subprocess.Popen([*FMEVAL, "monitor", "scheduler", "--once"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    rows = executions_by_window(store, "twice")
    assert len(rows) == len({start for start, _, _ in rows}) >= 6 and all(s == "Completed" for _, s, _ in rows[:6])
    ran = [line for out, _ in outputs for line in out.splitlines()]
    assert len(ran) == len(rows)  # each window reported by exactly one of the two


def test_schedule_lifecycle_and_a_failed_execution_through_the_cli(tmp_path, dq_baseline, capsys):
    start = hours_ago(2)
    three_hours(tmp_path / "capture", start - dt.timedelta(hours=1))
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]
    create = ["monitor", "schedule", "create", "life", "--baseline", str(dq_baseline), "--capture",
              str(tmp_path / "capture" / "model"), "--cron", "0 * * * *", "--start", start.isoformat(), "-o",
              str(tmp_path / "out"), *store]
    assert main(create) == 0
    assert main(create) == 2 and "exists" in capsys.readouterr().err
    assert main([*create, "--cron", "every hour"]) == 2  # the last --cron counts
    assert "is not a cron expression" in capsys.readouterr().err
    assert main(["monitor", "schedule", "stop", "life", *store]) == 0
    with MonitorStore(tmp_path / "store.sqlite") as monitor_store:
        assert run_due(monitor_store) == []  # a stopped schedule does not run
    assert main(["monitor", "schedule", "start", "life", *store]) == 0
    (dq_baseline / "profile.json").write_text("{broken")  # the baseline breaks: executions fail, with the reason
    with MonitorStore(tmp_path / "store.sqlite") as monitor_store:
        done = run_due(monitor_store)
    assert [e.status for e in done] == ["Failed", "Failed"] and "profile.json" in done[0].reason
    assert (tmp_path / "out" / "life").exists() and any((tmp_path / "out" / "life").rglob("failure.txt"))
    capsys.readouterr()
    assert main(["monitor", "schedule", "list", *store]) == 0
    assert "life\tdata-quality\tScheduled\t0 * * * *\t2 execution(s)\tlast: Failed" in capsys.readouterr().out
    assert main(["monitor", "schedule", "show", "life", *store]) == 0
    assert capsys.readouterr().out.count("\tFailed\t") == 2
    assert main(["monitor", "run", "life", *store]) == 2  # the last window has an execution already
    assert main(["monitor", "run", "life", "--rerun", *store]) == 1  # Failed again: exit 1
    assert main(["monitor", "schedule", "delete", "life", *store]) == 0
    assert main(["monitor", "schedule", "show", "life", *store]) == 2


def test_schedules_refuse_bad_names_unknown_metrics_and_windows_not_ended(tmp_path, dq_baseline, capsys):
    (tmp_path / "capture").mkdir()
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]
    common = ["--baseline", str(dq_baseline), "--capture", str(tmp_path / "capture"), "--cron", "0 * * * *",
              "-o", str(tmp_path / "out"), *store]
    for name in ("", "a/../b", ".hidden"):
        assert main(["monitor", "schedule", "create", name, *common]) == 2
        assert "a schedule's name is 1 to 200 characters" in capsys.readouterr().err
    assert main(["monitor", "schedule", "create", "s", *common, "--alarm", "drifted_colums >= 1"]) == 2
    err = capsys.readouterr().err
    assert "watches 'drifted_colums', which a data-quality monitor does not report" in err and "drifted_columns" in err
    assert main(["monitor", "schedule", "create", "s", *common, "--webhook", "notaurl"]) == 2
    assert main(["monitor", "schedule", "create", "s", *common, "--alarm", "feature_baseline_drift_income > 0.2"]) == 0
    now = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    current_hour = f"{now.isoformat()}/{(now + dt.timedelta(hours=1)).isoformat()}"
    assert main(["monitor", "run", "s", "--window", current_hour, *store]) == 2
    assert "has not ended: its traffic is still arriving" in capsys.readouterr().err
    assert executions_by_window(tmp_path / "store.sqlite", "s") == []  # nothing recorded for it


def test_bad_data_files_are_named_with_their_line_and_exit_2(tmp_path, dq_baseline, capsys):
    (tmp_path / "latin.csv").write_bytes(b"age,income,color\n\xff\xfe,1,red\n")
    (tmp_path / "bad.jsonl").write_text('{"age": 30, "income": 1.0, "color": "red"}\ngarbage\n')
    check = ["monitor", "data-quality", "check", "--baseline", str(dq_baseline), "-o", str(tmp_path / "o")]
    assert main([*check, "--data", str(tmp_path / "latin.csv")]) == 2
    assert "latin.csv" in capsys.readouterr().err
    assert main([*check, "--data", str(tmp_path / "bad.jsonl")]) == 2
    assert f"{tmp_path / 'bad.jsonl'}:2: invalid JSON" in capsys.readouterr().err
    assert main([*check, "--data", str(tmp_path / "reference.csv"), "--window", "2020-01-01T00:00Z/2020-01-01T01:00Z"]) == 2
    assert "--window selects captured events by their time" in capsys.readouterr().err
    (tmp_path / "card.json").write_bytes(b"\xff\xfe\x00bad")
    assert main(["cards", "import", "--name", "x", str(tmp_path / "card.json"), "--store", str(tmp_path / "s.sqlite"),
                 "--create"]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
