"""Alerts on monitor metrics: CloudWatch-style alarms, webhooks and CloudWatch metrics.

An `Alarm` watches one metric of a monitor's executions (`accuracy`, `drifted_columns`, ...)
with CloudWatch's semantics: a comparison with a threshold, "M out of N" datapoints, and a
treatment of missing data. `evaluate_alarm` gives the state CloudWatch would set, `transitions`
says whether actions fire (on a state change only), `alarm_payload` builds a CloudWatch-SNS-like
message, `post_webhook` delivers it (retried, never raising), and `put_metrics` publishes the
metrics to CloudWatch so that real CloudWatch alarms can watch them too.

Missing data follows "Configuring how CloudWatch alarms treat missing data" in the Amazon
CloudWatch User Guide (section "How alarm state is evaluated when data is missing"):
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html
(text and example tables as in github.com/awsdocs/amazon-cloudwatch-user-guide,
doc_source/AlarmThatSendsEmail.md, commit 05fd32f63861ca6646c8aa5c94334fd6e0dfdbf5).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import numbers
import random
import re
import time
import urllib.parse
from typing import Any, Mapping, Sequence

from fmeval.errors import UserError
from fmeval.model_runners.http import retry_after_seconds
from fmeval.retry import RetryableError, RetryPolicy
from fmeval.secrets import MASK, register_secret

logger = logging.getLogger(__name__)

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)

COMPARISONS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}
_OPERATORS = {symbol: name for name, symbol in COMPARISONS.items()}
_PHRASES = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
TREAT_MISSING_DATA = ("missing", "notBreaching", "breaching", "ignore")

# PutMetricData (CloudWatch API Reference): at most 1000 metrics and 1 MB per request, at most
# 30 dimensions per metric, values within [-2**360, 2**360], no NaN or infinities.
MAX_METRIC_DATA_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 1_000_000
MAX_DIMENSIONS = 30
MAX_ABS_VALUE = 2.0**360


@dataclasses.dataclass(frozen=True)
class Alarm:
    """An alarm on one monitor metric, as CloudWatch defines one.

    The alarm is breaching on a datapoint when `datapoint <comparison> threshold`. It goes to
    ALARM when at least `datapoints_to_alarm` (M) of the last `evaluation_periods` (N) datapoints
    breach; `treat_missing_data` says what an execution without the metric counts as.
    """

    name: str
    metric: str
    comparison: str
    threshold: float
    datapoints_to_alarm: int = 1
    evaluation_periods: int = 1
    treat_missing_data: str = "missing"

    def __post_init__(self) -> None:
        for field in ("name", "metric"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"alarm {field} must be a non-empty string, got {value!r}")
        if self.comparison not in COMPARISONS:
            raise UserError(
                f"alarm {self.name!r}: comparison must be one of {', '.join(COMPARISONS)}, got {self.comparison!r}"
            )
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, numbers.Real):
            raise UserError(f"alarm {self.name!r}: threshold must be a number, got {self.threshold!r}")
        if not math.isfinite(float(self.threshold)):
            raise UserError(f"alarm {self.name!r}: threshold must be finite, got {self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))
        for field in ("datapoints_to_alarm", "evaluation_periods"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"alarm {self.name!r}: {field} must be an integer >= 1, got {value!r}")
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise UserError(
                f"alarm {self.name!r}: datapoints_to_alarm ({self.datapoints_to_alarm}) must not exceed "
                f"evaluation_periods ({self.evaluation_periods}): M out of N needs M <= N"
            )
        if self.treat_missing_data not in TREAT_MISSING_DATA:
            raise UserError(
                f"alarm {self.name!r}: treat_missing_data must be one of {', '.join(TREAT_MISSING_DATA)}, "
                f"got {self.treat_missing_data!r}"
            )

    def breaches(self, value: float) -> bool:
        """Whether one datapoint is on the wrong side of the threshold."""
        if self.comparison == "GreaterThanThreshold":
            return value > self.threshold
        if self.comparison == "GreaterThanOrEqualToThreshold":
            return value >= self.threshold
        if self.comparison == "LessThanThreshold":
            return value < self.threshold
        return value <= self.threshold

    def describe(self) -> str:
        """The compact form `parse_alarm` reads, e.g. `drifted_columns >= 3 for 2 of 3`."""
        text = f"{self.metric} {COMPARISONS[self.comparison]} {_number(self.threshold)}"
        if self.evaluation_periods > 1:
            text += f" for {self.datapoints_to_alarm} of {self.evaluation_periods}"
        return text


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_ALARM_TEXT = re.compile(
    rf"^\s*(?P<metric>[A-Za-z_][\w.:/-]*?)\s*(?P<op><=|>=|<|>)\s*(?P<threshold>{_NUMBER})"
    r"(?:\s+for\s+(?P<m>\d+)\s*(?:/|\s(?:out\s+)?of\s)\s*(?P<n>\d+))?\s*$",
    re.IGNORECASE,
)
_EXPECTED_FORM = (
    "expected '<metric> <op> <threshold> [for M of N]' with op one of < <= > >=, "
    "e.g. 'accuracy < 0.8', 'drifted_columns >= 3 for 2 of 3' or 'ndcg<0.9 for 3/5'"
)


def parse_alarm(text: str, *, name: str | None = None, treat_missing_data: str = "missing") -> Alarm:
    """Read an alarm from its compact CLI form.

    `"accuracy < 0.8"` alarms on one breaching execution; `"drifted_columns >= 3 for 2 of 3"`
    (also `for 2/3` or `for 2 out of 3`) when 2 of the last 3 executions breach. The name
    defaults to the normalised text.
    """
    if not isinstance(text, str):
        raise UserError(f"cannot read alarm {text!r}: {_EXPECTED_FORM}")
    match = _ALARM_TEXT.match(text)
    if match is None:
        raise UserError(f"cannot read alarm {text!r}: {_EXPECTED_FORM}")
    m, n = match.group("m"), match.group("n")
    fields = dict(
        metric=match.group("metric"),
        comparison=_OPERATORS[match.group("op")],
        threshold=float(match.group("threshold")),
        datapoints_to_alarm=int(m) if m else 1,
        evaluation_periods=int(n) if n else 1,
        treat_missing_data=treat_missing_data,
    )
    try:
        alarm = Alarm(name=name if name is not None else fields["metric"], **fields)
        if name is None:
            alarm = dataclasses.replace(alarm, name=alarm.describe())
    except UserError as error:
        raise UserError(f"cannot read alarm {text!r}: {error}") from None
    return alarm


def _datapoint(value: Any, position: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"datapoint {position} must be a number or None (missing), got {value!r}")
    value = float(value)
    return None if math.isnan(value) else value


def _evaluate(
    alarm: Alarm,
    datapoints: Sequence[float | None],
    previous_state: str | None,
    evaluation_range: int | None,
) -> tuple[str, list[tuple[int, float | None]]]:
    """The new state and the N datapoints evaluated, as (position in the range, value or None)."""
    if isinstance(datapoints, (str, bytes)) or not isinstance(datapoints, Sequence):
        raise UserError(f"datapoints must be a sequence of numbers or None, got {type(datapoints).__name__}")
    if previous_state is not None and previous_state not in STATES:
        raise UserError(f"previous_state must be one of {', '.join(STATES)} or None, got {previous_state!r}")
    n, m = alarm.evaluation_periods, alarm.datapoints_to_alarm
    points = [_datapoint(value, i) for i, value in enumerate(datapoints)]
    if evaluation_range is not None:
        if isinstance(evaluation_range, bool) or not isinstance(evaluation_range, int) or evaluation_range < n:
            raise UserError(
                f"evaluation_range must be an integer >= evaluation_periods ({n}), got {evaluation_range!r}"
            )
        points = points[-evaluation_range:]
    real = [i for i, value in enumerate(points) if value is not None]
    retained = previous_state or INSUFFICIENT_DATA  # a new alarm starts in INSUFFICIENT_DATA

    if len(real) >= n:
        # Enough real datapoints: the most recent N of them decide, missing data plays no part.
        evaluated = [(i, points[i]) for i in real[-n:]]
        breaching = sum(alarm.breaches(value) for _, value in evaluated)
        return (ALARM if breaching >= m else OK), evaluated

    # Fewer real datapoints than N: every real one is evaluated, and as few missing ones as
    # possible (the most recent missing periods; periods before the history when it is short).
    fill = n - len(real)
    missing = [i for i, value in enumerate(points) if value is None]
    slots = missing[-fill:] if fill <= len(missing) else list(range(len(missing) - fill, 0)) + missing
    evaluated = sorted([(i, points[i]) for i in real] + [(i, None) for i in slots], key=lambda item: item[0])
    breaching = sum(alarm.breaches(points[i]) for i in real)
    not_breaching = len(real) - breaching
    treatment = alarm.treat_missing_data
    if treatment == "breaching":
        return (ALARM if breaching + fill >= m else OK), evaluated
    if treatment == "notBreaching":
        return (ALARM if breaching >= m else OK), evaluated
    # missing / ignore: the real datapoints decide when they can.
    if breaching >= m:
        return ALARM, evaluated
    if not_breaching:
        return OK, evaluated
    if treatment == "ignore":
        return retained, evaluated
    # missing: no data at all is INSUFFICIENT_DATA; breaching data only goes to ALARM when the
    # oldest evaluated datapoint is a real breaching one (the documented "X - - - -" row).
    if real and evaluated[0][1] is not None:
        return ALARM, evaluated
    return INSUFFICIENT_DATA, evaluated


def evaluate_alarm(
    alarm: Alarm,
    datapoints: Sequence[float | None],
    *,
    previous_state: str | None = None,
    evaluation_range: int | None = None,
) -> str:
    """The state CloudWatch would set: "OK", "ALARM" or "INSUFFICIENT_DATA".

    `datapoints` are the metric's values over the most recent executions, oldest first, with
    None (or NaN) where an execution did not produce the metric. They form the evaluation range
    (CloudWatch retrieves more periods than N, e.g. 5 for N = 3); `evaluation_range` keeps only
    the last that many. The rules, from CloudWatch's documentation:

    - with at least N real datapoints, the most recent N real ones are evaluated and missing
      data is ignored, whatever `treat_missing_data` says;
    - with fewer, every real datapoint is evaluated with as few missing ones as possible, to N
      in all: `breaching` and `notBreaching` count them as breaching or not; `missing` and
      `ignore` let the real datapoints decide (M breaching: ALARM; any not breaching: OK); with
      none, `missing` gives INSUFFICIENT_DATA and `ignore` keeps `previous_state`; with only
      breaching ones, `missing` gives ALARM when the oldest evaluated datapoint is a real one,
      else INSUFFICIENT_DATA, and `ignore` keeps `previous_state`;
    - ALARM when at least M evaluated datapoints breach, else OK.

    `previous_state` (None: a new alarm, which CloudWatch starts in INSUFFICIENT_DATA) is the
    state that `ignore` keeps.
    """
    return _evaluate(alarm, datapoints, previous_state, evaluation_range)[0]


def transitions(previous_state: str | None, new_state: str) -> bool:
    """Whether actions fire: CloudWatch runs an alarm's actions on a change of state only.

    None is an alarm never evaluated, which CloudWatch holds in INSUFFICIENT_DATA: its first
    OK or ALARM is a change (CloudWatch fires OK actions on INSUFFICIENT_DATA -> OK too).
    """
    if new_state not in STATES:
        raise UserError(f"new_state must be one of {', '.join(STATES)}, got {new_state!r}")
    if previous_state is not None and previous_state not in STATES:
        raise UserError(f"previous_state must be one of {', '.join(STATES)} or None, got {previous_state!r}")
    return (previous_state or INSUFFICIENT_DATA) != new_state


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise UserError(f"time {value.isoformat()} has no time zone; give UTC times")
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _state_reason(alarm: Alarm, state: str, previous: str, evaluated: list[tuple[int, float | None]]) -> str:
    values = [value for _, value in evaluated]
    shown = ", ".join("missing" if value is None else _number(value) for value in values)
    phrase = _PHRASES[alarm.comparison]
    breaching = sum(1 for value in values if value is not None and alarm.breaches(value))
    real = sum(1 for value in values if value is not None)
    if state == INSUFFICIENT_DATA:
        return (
            f"Insufficient Data: {real} of the last {len(values)} datapoints [{shown}] exist; "
            f"treat_missing_data is {alarm.treat_missing_data}."
        )
    was = "were" if breaching != 1 else "was"
    return (
        f"Threshold Crossed: {breaching} out of the last {len(values)} datapoints [{shown}] {was} {phrase} "
        f"the threshold ({_number(alarm.threshold)}) (minimum {alarm.datapoints_to_alarm} datapoints for "
        f"OK -> ALARM transition); {previous} -> {state}."
    )


def _execution_fields(execution: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(execution, Mapping):
        raise UserError(f"execution must be a mapping, got {type(execution).__name__}")
    if "status" not in execution:
        raise UserError("execution must have a 'status'")
    window = execution.get("window")
    start = execution.get("window_start", getattr(window, "start", None))
    end = execution.get("window_end", getattr(window, "end", None))
    if isinstance(window, Mapping):
        start, end = window.get("start", start), window.get("end", end)
    fields = {
        "Id": execution.get("id", execution.get("execution_id")),
        "Status": execution["status"],
        "Time": _iso(execution.get("time", execution.get("scheduled_time"))),
        "WindowStart": _iso(start),
        "WindowEnd": _iso(end),
    }
    if execution.get("failure_reason") is not None:
        fields["FailureReason"] = execution["failure_reason"]
    return fields


def alarm_payload(
    alarm: Alarm,
    *,
    state: str,
    previous_state: str | None,
    monitor: str,
    execution: Mapping[str, Any],
    datapoints: Sequence[float | None] | None = None,
    reason: str | None = None,
    state_change_time: dt.datetime | None = None,
) -> dict[str, Any]:
    """The webhook body for a state change, shaped like CloudWatch's SNS alarm message.

    `execution` is the monitor execution that produced the newest datapoint: its `status` and
    window (`window_start`/`window_end`, or `window` with `start`/`end`) are included, with its
    `id`, `time` and `failure_reason` when present. With `datapoints` (as given to
    `evaluate_alarm`) and no `reason`, NewStateReason lists the datapoints evaluated.
    `state_change_time` defaults to now (UTC).
    """
    if state not in STATES:
        raise UserError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    if previous_state is not None and previous_state not in STATES:
        raise UserError(f"previous_state must be one of {', '.join(STATES)} or None, got {previous_state!r}")
    if not isinstance(monitor, str) or not monitor:
        raise UserError(f"monitor must be a non-empty string, got {monitor!r}")
    old = previous_state or INSUFFICIENT_DATA
    if reason is None:
        if datapoints is not None:
            reason = _state_reason(alarm, state, old, _evaluate(alarm, datapoints, previous_state, None)[1])
        else:
            reason = f"{alarm.describe()}: {old} -> {state}"
    when = state_change_time if state_change_time is not None else dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is None:
        raise UserError(f"time {when.isoformat()} has no time zone; give a UTC time")
    stamp = when.astimezone(dt.timezone.utc)
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.describe(),
        "NewStateValue": state,
        "OldStateValue": old,
        "NewStateReason": reason,
        # CloudWatch's SNS messages write e.g. 2019-04-24T05:51:53.347+0000.
        "StateChangeTime": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000",
        "Trigger": {
            "MetricName": alarm.metric,
            "ComparisonOperator": alarm.comparison,
            "Threshold": alarm.threshold,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "TreatMissingData": alarm.treat_missing_data,
        },
        "Monitor": monitor,
        "Execution": _execution_fields(execution),
    }


# ---------------------------------------------------------------------------------------------
# Webhooks


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


_SECRET_HEADER = re.compile(r"auth|token|key|secret|signature|password|cookie|session", re.IGNORECASE)


def _safe_url(url: str) -> str:
    """The URL without what may hold a secret (path, query, user info), for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}/..." if parts.path not in ("", "/") or parts.query else f"{parts.scheme}://{host}"


class _Undelivered(Exception):
    """A webhook's final refusal (3xx, or a 4xx other than 429): not retried."""


def post_webhook(
    url: str,
    payload: dict,
    *,
    attempts: int = 5,
    backoff_s: float = 0.5,
    timeout_s: float = 10.0,
    headers: dict | None = None,
    max_backoff_s: float = 60.0,
) -> dict:
    """POST `payload` as JSON to `url`; never raises on a failed delivery.

    Connection errors, timeouts, 429 and 5xx are retried, up to `attempts` tries in all, after
    `backoff_s * 2**k` seconds with jitter (half fixed, half random), or after the response's
    Retry-After when that is longer; a Retry-After beyond `max_backoff_s` ends the tries. Other
    statuses (2xx delivered; 3xx and other 4xx failed) are final. Returns
    `{"delivered", "attempts", "status", "error"}`, where `status` is the last HTTP status (None
    without a response). Header values (tokens) and the URL's path and query never appear in
    the result or in log messages.
    """
    import httpx

    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https") \
            or not urllib.parse.urlsplit(url).hostname:
        raise UserError(f"webhook URL must be an http:// or https:// URL, got {url!r}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise UserError(f"attempts must be an integer >= 1, got {attempts!r}")
    for label, value in (("backoff_s", backoff_s), ("max_backoff_s", max_backoff_s)):
        if not isinstance(value, numbers.Real) or value < 0:
            raise UserError(f"{label} must be a number >= 0, got {value!r}")
    if not isinstance(timeout_s, numbers.Real) or timeout_s <= 0:
        raise UserError(f"timeout_s must be a number > 0, got {timeout_s!r}")
    headers = dict(headers or {})
    secrets = sorted(
        {str(value) for value in headers.values() if value is not None and len(str(value)) >= 4} | {url},
        key=len, reverse=True,
    )
    for key, value in headers.items():
        if value is not None and _SECRET_HEADER.search(str(key)):
            register_secret(str(value))  # fmeval's other outputs mask it too
    safe_url = _safe_url(url)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, MASK if secret != url else safe_url)
        return text

    body = json.dumps(_jsonable(payload), default=str).encode()
    request_headers = {"Content-Type": "application/json"}
    request_headers.update({str(key): str(value) for key, value in headers.items() if value is not None})
    policy = RetryPolicy(max_retries=attempts - 1, base_delay_s=backoff_s, max_delay_s=max_backoff_s, jitter=0.5,
                         give_up_beyond_cap=True)
    last: dict[str, Any] = {"status": None, "error": None}
    tried = 0

    def attempt() -> int:
        nonlocal tried
        tried += 1
        try:
            response = client.post(url, content=body, headers=request_headers)
        except httpx.TransportError as failure:  # connection refused, DNS, timeouts, dropped connections
            last.update(status=None, error=redact(f"{type(failure).__name__}: {failure}".rstrip(": ")))
            raise RetryableError(last["error"]) from None
        status = last["status"] = response.status_code
        if 200 <= status < 300:
            return status
        snippet = " ".join(response.text[:200].split())
        last["error"] = redact(f"HTTP {status}" + (f": {snippet}" if snippet else ""))
        if status == 429 or status >= 500:
            raise RetryableError(last["error"], retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        raise _Undelivered(last["error"])

    def sleep(delay: float) -> None:
        logger.warning("webhook %s attempt %d failed (%s); retrying in %.2fs", safe_url, tried, last["error"], delay)
        time.sleep(delay)

    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        try:
            status = policy.call(attempt, rng=random.Random(), sleep=sleep)
        except RetryableError as failure:
            if failure.retry_after is not None and failure.retry_after > max_backoff_s and tried < attempts:
                last["error"] += f" (Retry-After {failure.retry_after:g}s exceeds max_backoff_s {max_backoff_s:g}s)"
        except _Undelivered:
            pass
        else:
            logger.info("webhook %s delivered (HTTP %d, attempt %d)", safe_url, status, tried)
            return {"delivered": True, "attempts": tried, "status": status, "error": None}
    status, error = last["status"], last["error"]
    logger.warning("webhook %s not delivered after %d attempt(s): %s", safe_url, tried, error)
    return {"delivered": False, "attempts": tried, "status": status, "error": error}


# ---------------------------------------------------------------------------------------------
# CloudWatch metrics


def _timestamp(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"timestamp {value!r} is not an ISO 8601 time") from None
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        when = dt.datetime.fromtimestamp(float(value), dt.timezone.utc)
    else:
        raise UserError(f"timestamp must be a datetime, an ISO 8601 string or epoch seconds, got {value!r}")
    if when.tzinfo is None:
        raise UserError(f"timestamp {when.isoformat()} has no time zone; give a UTC time")
    return when.astimezone(dt.timezone.utc)


def _estimated_bytes(datum: dict[str, Any], index: int) -> int:
    """A generous estimate of one datum's share of a PutMetricData request (query encoding)."""
    prefix = len(f"MetricData.member.{index}.") + 8
    size = prefix * 4 + 3 * len(datum["MetricName"]) + 64
    for position, dimension in enumerate(datum["Dimensions"], 1):
        size += 2 * (prefix + len(f"Dimensions.member.{position}.Name=&")) + 3 * (
            len(dimension["Name"]) + len(dimension["Value"])
        )
    return size


def put_metrics(
    metrics: dict[str, float],
    *,
    namespace: str,
    dimensions: dict[str, str],
    timestamp: Any,
    client: Any = None,
    region: str | None = None,
) -> int:
    """Publish metrics to CloudWatch with PutMetricData; returns how many datapoints were sent.

    Each metric becomes one datum with the given dimensions and timestamp (a timezone-aware
    datetime, ISO 8601 string or epoch seconds). None, NaN, infinite and out-of-range values
    (CloudWatch accepts [-2**360, 2**360]) are skipped. Requests hold at most 1000 data and stay
    under 1 MB, CloudWatch's limits. `client` is a boto3 CloudWatch client; without one, a
    client for `region` (or the default region) is created. CloudWatch's errors (botocore's
    ClientError) propagate.
    """
    if not isinstance(namespace, str) or not namespace or len(namespace) > 255:
        raise UserError(f"namespace must be 1 to 255 characters, got {namespace!r}")
    if namespace.startswith("AWS/"):
        raise UserError(f"namespace {namespace!r} starts with 'AWS/', which CloudWatch reserves for AWS services")
    if not isinstance(dimensions, Mapping):
        raise UserError(f"dimensions must be a mapping of names to values, got {type(dimensions).__name__}")
    if len(dimensions) > MAX_DIMENSIONS:
        raise UserError(f"CloudWatch takes at most {MAX_DIMENSIONS} dimensions per metric, got {len(dimensions)}")
    cw_dimensions = []
    for key, value in dimensions.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise UserError(f"dimension name {key!r} must be a string of 1 to 255 characters")
        if not isinstance(value, str) or not 1 <= len(value) <= 1024:
            raise UserError(f"dimension {key!r} value {value!r} must be a string of 1 to 1024 characters")
        cw_dimensions.append({"Name": key, "Value": value})
    when = _timestamp(timestamp)
    if not isinstance(metrics, Mapping):
        raise UserError(f"metrics must be a mapping of names to numbers, got {type(metrics).__name__}")

    data = []
    for name, value in metrics.items():
        if not isinstance(name, str) or not 1 <= len(name) <= 255:
            raise UserError(f"metric name {name!r} must be a string of 1 to 255 characters")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UserError(f"metric {name!r} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
            logger.debug("metric %s skipped: %r cannot be sent to CloudWatch", name, value)
            continue
        data.append({"MetricName": name, "Dimensions": [dict(d) for d in cw_dimensions], "Timestamp": when,
                     "Value": value})
    if not data:
        return 0

    if client is None:
        try:
            import boto3
        except ImportError:
            raise UserError("put_metrics needs boto3: pip install 'fmeval[aws]'") from None
        try:
            client = boto3.client("cloudwatch", region_name=region)
        except Exception as error:  # botocore's NoRegionError and friends
            raise UserError(f"cannot create a CloudWatch client: {error}; give region= or set AWS_REGION") from None

    sent = 0
    batch: list[dict[str, Any]] = []
    size = 0
    for datum in data:
        estimate = _estimated_bytes(datum, len(batch) + 1)
        if batch and (len(batch) >= MAX_METRIC_DATA_PER_REQUEST or size + estimate > MAX_REQUEST_BYTES):
            client.put_metric_data(Namespace=namespace, MetricData=batch)
            sent += len(batch)
            batch, size = [], 0
            estimate = _estimated_bytes(datum, 1)
        batch.append(datum)
        size += estimate
    client.put_metric_data(Namespace=namespace, MetricData=batch)
    return sent + len(batch)
