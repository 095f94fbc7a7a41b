"""Alerts: CloudWatch alarm semantics against its documented examples, webhooks against a real
loopback HTTP server, and PutMetricData through botocore's Stubber."""
from __future__ import annotations

import datetime as dt
import http.server
import json
import logging
import math
import socket
import threading
import time

import pytest

from fmeval.errors import UserError
from fmeval.monitoring.alerts import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    Alarm,
    alarm_payload,
    evaluate_alarm,
    parse_alarm,
    post_webhook,
    put_metrics,
    transitions,
)

RETAIN = "retain"  # the documented "Retain current state"

# Oracle: the example tables of "How alarm state is evaluated when data is missing" in the
# Amazon CloudWatch User Guide, "Configuring how CloudWatch alarms treat missing data"
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html;
# text as in github.com/awsdocs/amazon-cloudwatch-user-guide doc_source/AlarmThatSendsEmail.md,
# commit 05fd32f63861ca6646c8aa5c94334fd6e0dfdbf5). CloudWatch retrieves the 5 most recent
# datapoints, oldest first; 0 is not breaching, X breaching, - missing. Columns: MISSING, IGNORE,
# BREACHING, NOT BREACHING.
THREE_OF_THREE = [
    ("0 - X - X", OK, OK, OK, OK),
    ("0 - - - -", OK, OK, OK, OK),
    ("- - - - -", INSUFFICIENT_DATA, RETAIN, ALARM, OK),
    ("0 X X - X", ALARM, ALARM, ALARM, ALARM),
    ("- - - - X", INSUFFICIENT_DATA, RETAIN, ALARM, OK),
    ("X - - - -", ALARM, RETAIN, ALARM, OK),
]
TWO_OF_THREE = [
    ("0 - X - X", ALARM, ALARM, ALARM, ALARM),
    ("0 0 X 0 X", ALARM, ALARM, ALARM, ALARM),
    ("0 - X - -", OK, OK, ALARM, OK),
    ("- - - - 0", OK, OK, ALARM, OK),
    ("- - - - X", INSUFFICIENT_DATA, RETAIN, ALARM, OK),
]
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


def _points(row: str, *, breach: float, fine: float) -> list[float | None]:
    return [{"0": fine, "X": breach, "-": None}[symbol] for symbol in row.split()]


def _documented_cases():
    for m, table in ((3, THREE_OF_THREE), (2, TWO_OF_THREE)):
        for row, *states in table:
            for treatment, expected in zip(TREATMENTS, states):
                yield pytest.param(m, row, treatment, expected, id=f"{m}of3[{row}]-{treatment}")


@pytest.mark.parametrize("m,row,treatment,expected", list(_documented_cases()))
def test_evaluate_alarm_matches_cloudwatch_documented_examples(m, row, treatment, expected):
    # The same table through an upper-bound alarm (accuracy < 0.8) and a lower-bound one
    # (drifted_columns > 2), and from both earlier states (which only `ignore` keeps).
    alarms = [
        (Alarm("acc", "accuracy", "LessThanThreshold", 0.8, m, 3, treatment), 0.5, 0.9),
        (Alarm("drift", "drifted_columns", "GreaterThanThreshold", 2, m, 3, treatment), 5, 0),
    ]
    for alarm, breach, fine in alarms:
        points = _points(row, breach=breach, fine=fine)
        for previous in (OK, ALARM):
            want = previous if expected == RETAIN else expected
            got = evaluate_alarm(alarm, points, previous_state=previous, evaluation_range=5)
            assert got == want, (alarm.comparison, row, treatment, previous)


def test_evaluate_alarm_hand_cases():
    gte = Alarm("d", "drifted_columns", "GreaterThanOrEqualToThreshold", 3, 2, 3)
    assert evaluate_alarm(gte, [3, 0, 3]) == ALARM            # equal to the threshold breaches >=
    assert evaluate_alarm(gte, [3, 0, 2]) == OK               # one of three is not two
    assert evaluate_alarm(gte, [3, 3, 0, 0, 2]) == OK         # only the last N datapoints count
    gt = Alarm("d", "drifted_columns", "GreaterThanThreshold", 3)
    assert evaluate_alarm(gt, [3]) == OK                      # equal does not breach >
    le = Alarm("n", "ndcg", "LessThanOrEqualToThreshold", 0.9, 3, 5)
    assert evaluate_alarm(le, [0.9, 0.95, 0.5, 1.0, 0.89]) == ALARM
    assert evaluate_alarm(le, [0.9, 0.95, 0.5, 1.0, 0.91]) == OK
    # missing datapoints between real ones are skipped when N real ones exist (NaN is missing too)
    le3 = Alarm("n", "ndcg", "LessThanOrEqualToThreshold", 0.9, 3, 3)
    assert evaluate_alarm(le3, [0.5, None, 0.5, math.nan, 0.5, None, 1.0, 1.0], evaluation_range=8) == OK
    assert evaluate_alarm(le3, [0.5, None, 0.5, math.nan, 0.5, None, None], evaluation_range=7) == ALARM
    # a new monitor: fewer executions than N
    three = Alarm("a", "accuracy", "LessThanThreshold", 0.8, 3, 3)
    assert evaluate_alarm(three, []) == INSUFFICIENT_DATA
    assert evaluate_alarm(three, [0.5, 0.5]) == INSUFFICIENT_DATA
    assert evaluate_alarm(three, [0.9]) == OK
    assert evaluate_alarm(Alarm("a", "accuracy", "LessThanThreshold", 0.8, 2, 3), [0.5, 0.5]) == ALARM
    breaching = Alarm("a", "accuracy", "LessThanThreshold", 0.8, 3, 3, "breaching")
    assert evaluate_alarm(breaching, [0.5]) == ALARM          # two earlier periods count as breaching
    assert evaluate_alarm(breaching, [0.9, 0.5]) == OK
    ignore = Alarm("a", "accuracy", "LessThanThreshold", 0.8, 3, 3, "ignore")
    assert evaluate_alarm(ignore, [None, None]) == INSUFFICIENT_DATA    # never evaluated: the initial state
    assert evaluate_alarm(ignore, [None, None], previous_state=ALARM) == ALARM
    # the evaluation range drops the oldest datapoints
    assert evaluate_alarm(three, [0.5, None, None, None, None, None], evaluation_range=5) == INSUFFICIENT_DATA


def test_evaluate_alarm_rejects_bad_input():
    alarm = Alarm("a", "accuracy", "LessThanThreshold", 0.8, 2, 3)
    with pytest.raises(UserError, match="datapoint 1 must be a number"):
        evaluate_alarm(alarm, [0.5, "0.7"])
    with pytest.raises(UserError, match="evaluation_range"):
        evaluate_alarm(alarm, [0.5], evaluation_range=2)
    with pytest.raises(UserError, match="previous_state"):
        evaluate_alarm(alarm, [0.5], previous_state="PENDING")


def test_alarm_validation():
    with pytest.raises(UserError, match="must not exceed evaluation_periods"):
        Alarm("a", "accuracy", "LessThanThreshold", 0.8, 4, 3)
    with pytest.raises(UserError, match="comparison must be one of GreaterThanThreshold"):
        Alarm("a", "accuracy", "LessThan", 0.8)
    with pytest.raises(UserError, match="treat_missing_data must be one of missing"):
        Alarm("a", "accuracy", "LessThanThreshold", 0.8, treat_missing_data="zero")
    with pytest.raises(UserError, match="threshold must be finite"):
        Alarm("a", "accuracy", "LessThanThreshold", math.inf)
    with pytest.raises(UserError, match="evaluation_periods must be an integer >= 1"):
        Alarm("a", "accuracy", "LessThanThreshold", 0.8, 1, 0)


def test_parse_alarm_forms():
    assert parse_alarm("accuracy < 0.8") == Alarm("accuracy < 0.8", "accuracy", "LessThanThreshold", 0.8, 1, 1)
    assert parse_alarm("drifted_columns >= 3 for 2 of 3") == Alarm(
        "drifted_columns >= 3 for 2 of 3", "drifted_columns", "GreaterThanOrEqualToThreshold", 3.0, 2, 3
    )
    assert parse_alarm("ndcg<0.9 for 3/5", name="ranking") == Alarm(
        "ranking", "ndcg", "LessThanThreshold", 0.9, 3, 5
    )
    assert parse_alarm("  feature_baseline_drift_age > 7 for 1 out of 2 ") == Alarm(
        "feature_baseline_drift_age > 7 for 1 of 2", "feature_baseline_drift_age", "GreaterThanThreshold", 7, 1, 2
    )
    alarm = parse_alarm("loss <= -1.5e-2", treat_missing_data="breaching")
    assert (alarm.comparison, alarm.threshold, alarm.treat_missing_data) == (
        "LessThanOrEqualToThreshold", -0.015, "breaching"
    )


@pytest.mark.parametrize("text", ["", "accuracy", "accuracy == 0.8", "accuracy < high", "< 0.8",
                                  "accuracy < 0.8 for 2", "accuracy < 0.8 during 2 of 3"])
def test_parse_alarm_malformed_names_text_and_form(text):
    with pytest.raises(UserError) as caught:
        parse_alarm(text)
    message = str(caught.value)
    assert repr(text) in message and "<metric> <op> <threshold> [for M of N]" in message


def test_parse_alarm_m_greater_than_n():
    with pytest.raises(UserError, match=r"'ndcg < 0.9 for 4 of 3'.*must not exceed"):
        parse_alarm("ndcg < 0.9 for 4 of 3")


def test_transitions_fire_on_state_change_only():
    assert transitions(None, OK) and transitions(None, ALARM) and transitions(OK, ALARM)
    assert transitions(ALARM, OK) and transitions(ALARM, INSUFFICIENT_DATA)
    assert not transitions(ALARM, ALARM) and not transitions(OK, OK)
    assert not transitions(None, INSUFFICIENT_DATA)  # a new alarm already is INSUFFICIENT_DATA
    with pytest.raises(UserError):
        transitions(OK, "FIRING")


def test_alarm_payload_fields():
    alarm = parse_alarm("accuracy < 0.8 for 2 of 3", name="acc-drop")
    execution = {"id": 42, "status": "Completed", "window_start": dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
                 "window_end": dt.datetime(2024, 5, 2, tzinfo=dt.timezone.utc)}
    at = dt.datetime(2024, 5, 2, 0, 5, 1, 250000, tzinfo=dt.timezone.utc)
    body = alarm_payload(alarm, state=ALARM, previous_state=None, monitor="support-bot", execution=execution,
                         datapoints=[0.9, 0.7, 0.75], state_change_time=at)
    assert body["AlarmName"] == "acc-drop"
    assert (body["NewStateValue"], body["OldStateValue"]) == ("ALARM", "INSUFFICIENT_DATA")
    assert body["StateChangeTime"] == "2024-05-02T00:05:01.250+0000"
    assert body["Trigger"] == {"MetricName": "accuracy", "ComparisonOperator": "LessThanThreshold",
                               "Threshold": 0.8, "EvaluationPeriods": 3, "DatapointsToAlarm": 2,
                               "TreatMissingData": "missing"}
    assert body["Monitor"] == "support-bot"
    assert body["Execution"] == {"Id": 42, "Status": "Completed", "Time": None,
                                 "WindowStart": "2024-05-01T00:00:00Z", "WindowEnd": "2024-05-02T00:00:00Z"}
    assert body["NewStateReason"].startswith(
        "Threshold Crossed: 2 out of the last 3 datapoints [0.9, 0.7, 0.75] were less than the threshold (0.8)"
    )
    json.dumps(body)  # a webhook body
    with pytest.raises(UserError, match="status"):
        alarm_payload(alarm, state=ALARM, previous_state=OK, monitor="m", execution={"id": 1})


# --------------------------------------------------------------------------------------------
# post_webhook against a real HTTP server on loopback

SECRET = "Bearer s3cr3t-t0ken-do-not-leak"


class _Server:
    """A loopback HTTP server answering scripted (status, headers, body) responses in order."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[tuple[dict, bytes]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append((dict(self.headers), body))
                status, headers, text = server.script.pop(0) if server.script else (200, {}, "ok")
                data = text.replace("{auth}", self.headers.get("Authorization", "")).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/team-token-path"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


PAYLOAD = {"AlarmName": "acc-drop", "NewStateValue": "ALARM", "Trigger": {"Threshold": 0.8}}


def test_post_webhook_retries_503_then_delivers(caplog):
    caplog.set_level(logging.DEBUG, logger="fmeval.monitoring.alerts")
    with _Server([(503, {}, "busy"), (503, {}, "busy {auth}"), (200, {}, "ok")]) as server:
        result = post_webhook(server.url, PAYLOAD, backoff_s=0.01, headers={"Authorization": SECRET})
    assert result == {"delivered": True, "attempts": 3, "status": 200, "error": None}
    assert len(server.requests) == 3
    for headers, body in server.requests:
        assert json.loads(body) == PAYLOAD
        assert headers["Authorization"] == SECRET and headers["Content-Type"] == "application/json"
    assert SECRET not in caplog.text and "s3cr3t" not in caplog.text
    assert "team-token-path" not in caplog.text  # the URL path may hold a token too
    assert "retrying" in caplog.text


def test_post_webhook_does_not_retry_400_and_hides_secrets():
    # The server echoes the token in its error body: the result must not carry it.
    with _Server([(400, {}, "bad request from {auth}")]) as server:
        result = post_webhook(server.url, PAYLOAD, backoff_s=0.01, headers={"Authorization": SECRET})
    assert len(server.requests) == 1
    assert result["delivered"] is False and result["attempts"] == 1 and result["status"] == 400
    assert result["error"].startswith("HTTP 400")
    assert "s3cr3t" not in json.dumps(result)


def test_post_webhook_honours_retry_after_and_gives_up_after_attempts():
    with _Server([(429, {"Retry-After": "0.4"}, ""), (200, {}, "")]) as server:
        started = time.monotonic()
        result = post_webhook(server.url, PAYLOAD, backoff_s=0.001)
        elapsed = time.monotonic() - started
    assert result["delivered"] and result["attempts"] == 2 and elapsed >= 0.4
    with _Server([(500, {}, "")] * 3) as server:
        result = post_webhook(server.url, PAYLOAD, attempts=3, backoff_s=0.001)
    assert len(server.requests) == 3
    assert result == {"delivered": False, "attempts": 3, "status": 500, "error": "HTTP 500"}


def test_post_webhook_unreachable_port_does_not_raise():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = post_webhook(f"http://127.0.0.1:{port}/hook", PAYLOAD, attempts=2, backoff_s=0.001,
                          timeout_s=2, headers={"X-Api-Key": "key-123456789"})
    assert result["delivered"] is False and result["attempts"] == 2 and result["status"] is None
    assert result["error"] and "key-123456789" not in json.dumps(result)


def test_post_webhook_rejects_bad_arguments():
    with pytest.raises(UserError, match="http:// or https://"):
        post_webhook("ftp://example.com/x", PAYLOAD)
    with pytest.raises(UserError, match="attempts"):
        post_webhook("http://127.0.0.1:9/x", PAYLOAD, attempts=0)


# --------------------------------------------------------------------------------------------
# put_metrics through botocore's Stubber

WHEN = dt.datetime(2024, 5, 2, 12, 0, tzinfo=dt.timezone.utc)
DIMENSIONS = {"Monitor": "support-bot", "Endpoint": "prod"}
CW_DIMENSIONS = [{"Name": "Monitor", "Value": "support-bot"}, {"Name": "Endpoint", "Value": "prod"}]


@pytest.fixture
def cloudwatch():
    boto3 = pytest.importorskip("boto3")
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _datum(name, value):
    return {"MetricName": name, "Dimensions": CW_DIMENSIONS, "Timestamp": WHEN, "Value": value}


def test_put_metrics_sends_exact_params_and_skips_non_finite(cloudwatch):
    from botocore.stub import Stubber

    with Stubber(cloudwatch) as stub:
        stub.add_response("put_metric_data", {}, {
            "Namespace": "fmeval/monitoring",
            "MetricData": [_datum("accuracy", 0.91), _datum("drifted_columns", 3.0)],
        })
        sent = put_metrics({"accuracy": 0.91, "ndcg": math.nan, "drifted_columns": 3, "auc": None,
                            "psi": math.inf}, namespace="fmeval/monitoring", dimensions=DIMENSIONS,
                           timestamp=WHEN, client=cloudwatch)
        stub.assert_no_pending_responses()
    assert sent == 2


def test_put_metrics_batches_at_1000_per_request(cloudwatch):
    from botocore.stub import Stubber

    metrics = {f"feature_{i}_psi": i / 1000 for i in range(1001)}
    data = [_datum(name, value) for name, value in metrics.items()]
    with Stubber(cloudwatch) as stub:
        stub.add_response("put_metric_data", {}, {"Namespace": "fmeval", "MetricData": data[:1000]})
        stub.add_response("put_metric_data", {}, {"Namespace": "fmeval", "MetricData": data[1000:]})
        sent = put_metrics(metrics, namespace="fmeval", dimensions=DIMENSIONS, timestamp="2024-05-02T12:00:00Z",
                           client=cloudwatch)
        stub.assert_no_pending_responses()
    assert sent == 1001


def test_put_metrics_creates_its_client_lazily(cloudwatch, monkeypatch):
    import boto3
    from botocore.stub import Stubber

    made = []
    monkeypatch.setattr(boto3, "client", lambda service, region_name=None: made.append((service, region_name))
                        or cloudwatch)
    with Stubber(cloudwatch) as stub:
        assert put_metrics({"accuracy": None}, namespace="fmeval", dimensions={}, timestamp=WHEN) == 0
        assert made == []  # nothing to send: no client
        stub.add_response("put_metric_data", {}, {"Namespace": "fmeval", "MetricData": [
            {"MetricName": "accuracy", "Dimensions": [], "Timestamp": WHEN, "Value": 0.5}]})
        assert put_metrics({"accuracy": 0.5}, namespace="fmeval", dimensions={}, timestamp=WHEN,
                           region="eu-west-1") == 1
    assert made == [("cloudwatch", "eu-west-1")]


def test_put_metrics_validation():
    with pytest.raises(UserError, match="reserves"):
        put_metrics({"a": 1}, namespace="AWS/SageMaker", dimensions={}, timestamp=WHEN, client=object())
    with pytest.raises(UserError, match="no time zone"):
        put_metrics({"a": 1}, namespace="fmeval", dimensions={}, timestamp=dt.datetime(2024, 5, 2), client=object())
    with pytest.raises(UserError, match="at most 30 dimensions"):
        put_metrics({"a": 1}, namespace="fmeval", dimensions={f"d{i}": "v" for i in range(31)}, timestamp=WHEN,
                    client=object())
    with pytest.raises(UserError, match="metric 'a' must be a number"):
        put_metrics({"a": "high"}, namespace="fmeval", dimensions={}, timestamp=WHEN, client=object())
