"""Monitoring of a deployed LLM from its captured prompt and response pairs.

A window of traffic (any iterable of `{"event_id", "prompt", "response", "reference"?,
"error"?}` dicts) is scored record by record by `score_window` and written as an ordinary fmeval
run, so that reports, the run store and `fmeval compare` read it as they read any evaluation.
`check_llm_outputs` then compares a window with a baseline window through `compare_runs` (the
same 95% bootstrap intervals and p-values, paired when the window replays the baseline's
prompts) and reports violations in Model Monitor's layout.

Per-record scores:
- `response_words`, `prompt_words`: whitespace-separated words; `response_chars`: characters;
- `refusal`: 1 when one of `REFUSAL_PATTERNS` (case-insensitive) opens the response or one of
  its sentences, else 0;
- `toxicity`: the largest of a detector's scores for the response, only when a detector is
  given (`fmeval.algorithms.toxicity.Detector`, or any object whose `.score(texts)` returns
  `{score name: [value per text]}`);
- `exact_match` and `f1` (AWS fmeval's exact match and word F1, best over the targets), only for
  records with a `reference`.

Each record also keeps `prompt_language` and `response_language` (py3langid's ISO 639-1 code,
`"unknown"` for texts under `MIN_LANGUAGE_WORDS` words), whose distributions are compared with
data quality's categorical drift test.

Record ids are a hash of the prompt text (`#2`, `#3`... for its repeats within the window), so a
window that replays the baseline's prompts is compared record by record (paired bootstrap). Live
traffic shares at most a few prompts with the baseline by chance; pairing on those few would
ignore the rest, so windows are compared unpaired unless at least `PAIRED_SHARE` of the window's
records have their id in the baseline.

Responses that failed (an `error` field) are kept as error records: counted, never scored.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import re
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from fmeval.errors import UserError
from fmeval.scores import MetricSpec

if TYPE_CHECKING:
    from fmeval.runs.loaded import LoadedRun

EVAL_NAME = "llm_outputs"
"""The evaluation name of every window: any two windows of one capture compare."""
DEFAULT_CAPTURE = "llm_capture"
CHUNK = 512  # pairs scored together (one call to the toxicity detector per chunk)
N_BOOTSTRAP = 1000  # resamples for the CIs of a window's own dataset scores (RunConfig's default)
MIN_LANGUAGE_WORDS = 3
UNKNOWN_LANGUAGE = "unknown"
PAIRED_SHARE = 0.5
MIN_LANGUAGE_SHIFT = 0.02
"""Language drift is reported only when some language's share moved by at least this much: with a
small baseline, one message in a language the baseline never saw makes chi-square's p-value 0."""

REFUSAL = "refusal"
TOXICITY = "toxicity"
EXACT_MATCH = "exact_match"
F1 = "f1"
RESPONSE_WORDS = "response_words"
RESPONSE_CHARS = "response_chars"
PROMPT_WORDS = "prompt_words"
LENGTHS = (RESPONSE_WORDS, RESPONSE_CHARS, PROMPT_WORDS)
LANGUAGE_FIELDS = ("prompt_language", "response_language")

_CANT = r"(?:can ?not|can't|won't|will not|am unable to|'m unable to|am not able to|'m not able to)\b"
REFUSAL_PATTERNS: tuple[str, ...] = (
    rf"I(?:'m| am) (?:really |very )?sorry,? (?:but )?I {_CANT}",      # I'm sorry, but I can't ...
    rf"I apologi[sz]e,? (?:but )?I {_CANT}",                           # I apologize, but I cannot ...
    rf"(?:Sorry|Unfortunately),? (?:but )?I {_CANT}",                  # Sorry, I can't ...
    r"As an AI\b(?: language model| assistant| model)?",               # As an AI language model, ...
    r"I(?:'m| am) (?:just |only )?an AI\b",                            # I'm just an AI ...
    rf"I {_CANT} (?:help|assist) (?:you )?with",                       # I cannot help with ...
    rf"I {_CANT} (?:provide|fulfil+|comply with|create|generate|share|answer|do) (?:that|this|your|such)",
    r"I must (?:respectfully )?(?:decline|refuse)",                    # I must decline ...
    r"I(?:'m| am) not (?:able|allowed|permitted) to (?:help|assist|provide|answer|share|discuss)",
)
"""Refusal phrases (regular expressions, matched case-insensitively at the start of the response
or of one of its sentences, curly apostrophes read as straight ones)."""
_REFUSAL = re.compile("|".join(f"(?:{pattern})" for pattern in REFUSAL_PATTERNS), re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_SENTENCE_LEAD = " \t\"'*->•#`_([“‘"

DEFAULT_MAX_CHANGE: dict[str, float] = {
    REFUSAL: 0.05, TOXICITY: 0.05, F1: 0.05, EXACT_MATCH: 0.05,
    RESPONSE_WORDS: 0.25, RESPONSE_CHARS: 0.25, PROMPT_WORDS: 0.25,
}
"""How much worse a metric may get before a significant change is a violation: in the metric's own
units for refusal, toxicity (up), f1 and exact_match (down); as a share of the baseline's value,
either way, for the lengths."""

ERR_EMPTY_LABEL = "score_window: label must be a non-empty string naming the window"
ERR_DETECTOR = "detector must be a toxicity Detector or an object with .score(texts) -> {name: [value per text]}"


# -- per-record values -------------------------------------------------------------------------------
def is_refusal(response: str) -> bool:
    """Whether a refusal phrase of `REFUSAL_PATTERNS` opens the response or one of its sentences."""
    text = response.replace("\u2019", "'").replace("\u2018", "'")
    return any(_REFUSAL.match(sentence.lstrip(_SENTENCE_LEAD)) for sentence in _SENTENCE_BREAK.split(text))


def language_of(text: str) -> str:
    """py3langid's ISO 639-1 code of `text`, or "unknown" below `MIN_LANGUAGE_WORDS` words."""
    if len(text.split()) < MIN_LANGUAGE_WORDS or not any(ch.isalpha() for ch in text):
        return UNKNOWN_LANGUAGE
    import py3langid

    return str(py3langid.classify(text)[0])


def record_id(prompt: str, seen: dict[str, int]) -> str:
    """A hash of the prompt text, with `#2`, `#3`... for its repeats (`seen` counts them per window)."""
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
    seen[digest] = seen.get(digest, 0) + 1
    return digest if seen[digest] == 1 else f"{digest}#{seen[digest]}"


def _specs(names: Sequence[str], lengths: Mapping[str, float | None]) -> list[MetricSpec]:
    """Refusal and toxicity: lower is better; f1 and exact match: higher. Lengths have no better
    direction: MetricSpec expresses that as a target (`higher_is_better=None`), here the window's own
    mean, so that compared against this window any change either way counts as worsening."""
    fixed = {
        REFUSAL: MetricSpec(REFUSAL, higher_is_better=False),
        TOXICITY: MetricSpec(TOXICITY, higher_is_better=False),
        EXACT_MATCH: MetricSpec(EXACT_MATCH),
        F1: MetricSpec(F1),
    }
    return [fixed[name] if name in fixed else
            MetricSpec(name, higher_is_better=None, ideal=lengths.get(name) or 0.0, range=(0.0, math.inf))
            for name in names]


def _pair(item: Any, number: int) -> tuple[str, str, str | None, list[str] | None, str | None]:
    """(event id, prompt, response, references, error) of one pair, or a UserError saying what is wrong."""
    where = f"pair {number}"
    if not isinstance(item, Mapping):
        raise UserError(f"{where}: expected a dict with prompt and response, got {type(item).__name__}")
    event_id = item.get("event_id")
    event_id = str(number) if event_id in (None, "") else str(event_id)
    where = f"pair {number} (event {event_id})"
    prompt = item.get("prompt")
    if not isinstance(prompt, str):
        raise UserError(f"{where}: prompt must be a string, got {type(prompt).__name__}")
    error = item.get("error")
    if error is not None and error != "":
        return event_id, prompt, None, None, str(error)
    if "response" not in item:
        raise UserError(f"{where}: no response field (give the model's answer as 'response', or an 'error')")
    response = item["response"]
    if response is None:
        return event_id, prompt, None, None, "no response was captured"
    if not isinstance(response, str):
        raise UserError(f"{where}: response must be a string, got {type(response).__name__}")
    reference = item.get("reference")
    if reference is None:
        references = None
    elif isinstance(reference, str):
        references = [reference]
    elif isinstance(reference, (list, tuple)) and reference and all(isinstance(r, str) for r in reference):
        references = list(reference)
    else:
        raise UserError(f"{where}: reference must be a string or a non-empty list of strings")
    return event_id, prompt, response, references, None


def _toxicity(detector: Any, texts: list[str]) -> list[float]:
    """The largest of the detector's scores for each text."""
    if not texts:
        return []
    scores = detector.score(texts)
    if not isinstance(scores, Mapping) or not scores:
        raise UserError(f"the toxicity detector returned {type(scores).__name__}, not {{name: [value per text]}}")
    columns = []
    for name, values in scores.items():
        values = list(values)
        if len(values) != len(texts):
            raise UserError(f"the toxicity detector returned {len(values)} {name!r} scores for {len(texts)} texts")
        columns.append([float(v) for v in values])
    return [max(column[i] for column in columns) for i in range(len(texts))]


def _score_chunk(chunk: list[tuple[str, int, tuple]], detector: Any) -> list[dict[str, Any]]:
    from fmeval.algorithms.text_metrics import exact_match, f1_over_words

    lines = []
    for record_id, number, (event_id, prompt, response, references, error) in chunk:
        line: dict[str, Any] = {
            "record_id": record_id, "location": f"pair {number}", "category": None, "model_input": prompt,
            "prompt": prompt, "model_output": response, "target_output": references, "scores": {}, "error": error,
            "event_id": event_id, "prompt_language": language_of(prompt), "response_language": None,
        }
        if error is not None:
            line["error_retryable"] = False
        else:
            scores = {RESPONSE_WORDS: len(response.split()), RESPONSE_CHARS: len(response),
                      PROMPT_WORDS: len(prompt.split()), REFUSAL: float(is_refusal(response))}
            if references is not None:
                scores[EXACT_MATCH] = max(exact_match(response, target) for target in references)
                scores[F1] = max(f1_over_words(response, target) for target in references)
            line["scores"] = scores
            line["response_language"] = language_of(response)
        lines.append(line)
    if detector is not None:
        scored = [line for line in lines if line["error"] is None]
        for line, value in zip(scored, _toxicity(detector, [line["model_output"] for line in scored])):
            line["scores"][TOXICITY] = value
    return lines


def _detector_config(detector: Any) -> Any:
    if detector is None:
        return None
    config = getattr(detector, "config", None)
    return config() if callable(config) else type(detector).__name__


# -- a window as a run -------------------------------------------------------------------------------
def score_window(pairs: Iterable[Mapping[str, Any]], output: str | os.PathLike[str], *, label: str,
                 detector: Any = None, seed: int = 0, capture: str = DEFAULT_CAPTURE,
                 overwrite: bool = False) -> LoadedRun:
    """Score a window of captured prompt/response pairs and write it as an fmeval run in `output`.

    `pairs`: dicts with `prompt` and `response` (strings), and optionally `event_id`, `reference`
    (the ground truth: a string or a list of acceptable answers) and `error` (the call failed: the
    pair is kept as an error record, not scored). `label` names the window in reports (e.g.
    "baseline", "2024-06-01"). `detector` adds a toxicity score (see the module docstring).
    `seed` seeds the bootstrap CIs of the window's dataset scores. `capture` names the traffic:
    windows compare only with windows of the same capture. A directory that already holds a run
    is refused unless `overwrite`.

    Returns the run, loaded (`fmeval.runs.LoadedRun`), labelled `label`.
    """
    from fmeval.algorithms.base import RecordResult
    from fmeval.datasets.record import Record
    from fmeval.runs.aggregate import aggregate
    from fmeval.runs.directory import RunDirectory
    from fmeval.runs.loaded import load_run
    from fmeval.runs.summary import EvalOutput
    from fmeval.version import __version__

    started = time.perf_counter()
    if not isinstance(label, str) or not label.strip():
        raise UserError(ERR_EMPTY_LABEL)
    if not isinstance(capture, str) or not capture.strip():
        raise UserError("score_window: capture must be a non-empty string naming the captured traffic")
    if detector is not None and not callable(getattr(detector, "score", None)):
        raise UserError(ERR_DETECTOR)
    if isinstance(pairs, (str, bytes, Mapping)):
        raise UserError("score_window: pairs must be an iterable of dicts (one per prompt/response pair)")
    directory = RunDirectory(output)
    if directory.run_path.exists() and not overwrite:
        raise UserError(f"{directory.path} already holds a run; choose another output, or overwrite=True")
    directory.check_writable()
    identity = {"evaluation": EVAL_NAME, "capture": capture, "label": label,
                "toxicity_detector": _detector_config(detector), "seed": seed}
    results: list[RecordResult] = []
    names: set[str] = set()
    seen: dict[str, int] = {}
    with directory.writing(identity, overwrite=True) as writer:
        chunk: list[tuple[str, int, tuple]] = []

        def flush() -> None:
            lines = _score_chunk(chunk, detector)
            writer.append(lines)
            for line in lines:
                names.update(line["scores"])
                record = Record(record_id=line["record_id"], location=line["location"],
                                target_output=line["target_output"])
                results.append(RecordResult(record, line["model_output"], line["scores"], line["error"]))
            chunk.clear()

        for number, item in enumerate(pairs, start=1):
            pair = _pair(item, number)
            chunk.append((record_id(pair[1], seen), number, pair))
            if len(chunk) >= CHUNK:
                flush()
        if chunk or not results:  # an empty window still has its (empty) records file
            flush()
        score_names = [REFUSAL, *([TOXICITY] if detector is not None else []),
                       *(name for name in (EXACT_MATCH, F1) if name in names), *LENGTHS]
        scores = aggregate(results, score_names, {}, n_bootstrap=N_BOOTSTRAP, seed=seed)
        lengths = {score.name: score.value for score in scores if score.name in LENGTHS}
        summary = EvalOutput(
            eval_name=EVAL_NAME,
            dataset_name=capture,
            run_id=writer.run_id,
            dataset_scores=scores,
            metrics=_specs(score_names, lengths),
            output_path=str(directory.path),
            num_records=len(results),
            num_errors=sum(1 for result in results if result.error is not None),
            model={"type": "captured traffic", "model": label},
            dataset={"dataset_name": capture, "source": "captured prompt/response pairs",
                     "records_read": len(results)},
            config={"evaluation": {"refusal_patterns": list(REFUSAL_PATTERNS),
                                   "toxicity_detector": identity["toxicity_detector"],
                                   "min_language_words": MIN_LANGUAGE_WORDS},
                    "n_bootstrap": N_BOOTSTRAP, "label": label},
            seed=seed,
            fmeval_version=__version__,
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            timings={"total_s": round(time.perf_counter() - started, 3)},
        )
        writer.finish(summary)
    run = load_run(directory.path)
    run.label = label
    return run


# -- a window against a baseline ---------------------------------------------------------------------
def _limits(max_change: Mapping[str, float] | None) -> dict[str, float]:
    limits = dict(DEFAULT_MAX_CHANGE)
    for name, value in (max_change or {}).items():
        if name not in DEFAULT_MAX_CHANGE:
            raise UserError(f"max_change: unknown metric {name!r}; the metrics are {', '.join(DEFAULT_MAX_CHANGE)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"max_change[{name!r}] must be a non-negative number, got {value!r}")
        limits[name] = float(value)
    return limits


def _as_run(run: Any, role: str) -> LoadedRun:
    from fmeval.runs.loaded import LoadedRun, load_run

    if isinstance(run, (str, os.PathLike)):
        run = load_run(run)
    if not isinstance(run, LoadedRun):
        raise UserError(f"the {role} must be a window from score_window (a LoadedRun or its directory)")
    if run.summary.eval_name != EVAL_NAME:
        raise UserError(f"the {role} ({run.directory.path}) is a {run.summary.eval_name!r} run, not a window "
                        f"scored by score_window")
    return run


def _read(run: LoadedRun) -> tuple[set[str], dict[str, dict[str, int]], int]:
    """Ids of the scored records, each language field's counts, and the number of scored records.
    Prompt languages count every record (errors too); response languages the scored ones."""
    ids: set[str] = set()
    counts: dict[str, dict[str, int]] = {name: {} for name in LANGUAGE_FIELDS}
    for line in run.records():
        for name in LANGUAGE_FIELDS:
            value = line.get(name)
            if value is not None:
                counts[name][value] = counts[name].get(value, 0) + 1
        if line.get("error") is None:
            ids.add(str(line["record_id"]))
    return ids, counts, len(ids)


def _language_drift(reference: dict[str, int], current: dict[str, int], threshold: float) -> dict[str, Any] | None:
    """data_quality's categorical drift of two languages' counts, by Evidently's rules (as documented
    in `check_llm_outputs`); Jensen-Shannon decides against `threshold` where they use a distance
    (baselines over SMALL_REFERENCE)."""
    from fmeval.monitoring.data_quality import ColumnProfile, column_drift

    if not reference or not current:
        return None
    drift = column_drift(ColumnProfile("String", sum(reference.values()), counts=dict(reference)),
                         ColumnProfile("String", sum(current.values()), counts=dict(current)), method="evidently")
    if drift["test"] == "jensen_shannon":
        drift.update(threshold=threshold, drifted=drift["jensen_shannon"] >= threshold)
    drift["drifted"] = bool(drift["drifted"]) and drift["linf"] >= MIN_LANGUAGE_SHIFT
    return {"baseline": dict(sorted(reference.items(), key=lambda kv: -kv[1])),
            "window": dict(sorted(current.items(), key=lambda kv: -kv[1])), **drift}


def _shares(counts: dict[str, int], top: int = 3) -> str:
    total = sum(counts.values())
    return ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:top])


def _score_text(drift: dict[str, Any]) -> str:
    """A drift test's score said for what it is: a p-value below its level, or a distance above it."""
    if drift["test"] in ("z", "chi_square", "ks"):
        return f"{drift['test'].replace('_', '-')} test p-value {drift['score']:.3g} < {drift['threshold']}"
    return f"{drift['test'].replace('_', '-')} distance {drift['score']:.3f} >= {drift['threshold']}"


def _violation(metric: Any, limit: float) -> str | None:
    """The description of a violation, or None: a change is one when its 95% CI excludes 0, it goes the
    bad way (either way for lengths) and it is larger than `limit`."""
    if metric.name not in DEFAULT_MAX_CHANGE or metric.delta is None or not metric.significant:
        return None
    ci = f"95% CI [{metric.ci_lower:+.4g}, {metric.ci_upper:+.4g}], {metric.method}, p={metric.p_value:.3g}"
    if metric.name in LENGTHS:
        change = abs(metric.delta) / metric.baseline if metric.baseline else math.inf
        if change <= limit:
            return None
        return (f"{metric.name} changed from {metric.baseline:.4g} to {metric.candidate:.4g} "
                f"({metric.delta / metric.baseline:+.1%} of the baseline; {ci}); allowed ±{limit:.0%}"
                if metric.baseline else f"{metric.name} changed from 0 to {metric.candidate:.4g} ({ci})")
    worse = metric.worsening
    if worse is None or worse <= limit:
        return None
    way = "rose" if metric.delta > 0 else "fell"
    return (f"{metric.name} {way} from {metric.baseline:.4f} to {metric.candidate:.4f} ({metric.delta:+.4f}; {ci}); "
            f"allowed {limit:.4g} worse")


def check_llm_outputs(baseline: LoadedRun | str | os.PathLike[str], window: LoadedRun | str | os.PathLike[str], *,
                      max_change: Mapping[str, float] | None = None, language_threshold: float = 0.1,
                      n_bootstrap: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Compare a window of traffic with a baseline window (both from `score_window`).

    Every metric goes through `fmeval.reports.compare.compare_runs` (paired when at least
    `PAIRED_SHARE` of the window's records replay baseline prompts, else unpaired). A metric
    violates when its change is significant (the 95% CI of the delta excludes 0), goes the bad way
    (either way for lengths) and exceeds `max_change[metric]` (defaults: `DEFAULT_MAX_CHANGE`;
    given values replace those metrics' defaults). Prompt and response languages violate
    ("language_drift") when data quality's categorical test finds drift: chi-square (or a Z-test
    for two languages) at p < 0.05 for a baseline of up to 1,000 records, Jensen-Shannon distance
    >= `language_threshold` above; a drift that moves no language's share by `MIN_LANGUAGE_SHIFT`
    is not reported.

    Returns `{"status": "Completed" | "CompletedWithViolations" | "NoData", "violations": [...],
    "metrics": {name: window value, name_delta: change}, "comparison": compare's to_dict(),
    "languages": {...}, "num_records", "num_errors"}`; a window with no scored record is NoData.
    """
    from fmeval.reports.compare import compare_runs

    baseline, window = _as_run(baseline, "baseline"), _as_run(window, "window")
    limits = _limits(max_change)
    if isinstance(language_threshold, bool) or not isinstance(language_threshold, (int, float)) \
            or not 0 < language_threshold <= 1:
        raise UserError(f"language_threshold must be in (0, 1], got {language_threshold!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 1:
        raise UserError(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}")
    counts = {"num_records": window.summary.num_records, "num_errors": window.summary.num_errors}
    window_ids, window_languages, window_scored = _read(window)
    if window_scored == 0:
        return {"status": "NoData", "violations": [], "metrics": {}, "comparison": None, "languages": {}, **counts}
    base_ids, base_languages, base_scored = _read(baseline)
    if base_scored == 0:
        raise UserError(f"the baseline window ({baseline.directory.path}) has no scored record to compare with")
    paired = len(window_ids & base_ids) >= PAIRED_SHARE * window_scored
    comparison = compare_runs(baseline, window, n_bootstrap=n_bootstrap, seed=seed, paired=paired)
    violations: list[dict[str, str]] = []
    # every score of the window (those the baseline lacks too, e.g. F1 once ground truth arrives), and the changes
    metrics: dict[str, float | None] = {score.name: score.value for score in window.summary.dataset_scores}
    for metric in comparison.metrics:
        metrics[metric.name] = metric.candidate
        metrics[f"{metric.name}_delta"] = metric.delta
        description = _violation(metric, limits.get(metric.name, math.inf))
        if description is not None:
            violations.append({"metric_name": metric.name, "constraint_check_type": "metric_change_check",
                               "description": description})
    languages: dict[str, Any] = {}
    for name in LANGUAGE_FIELDS:
        drift = _language_drift(base_languages[name], window_languages[name], float(language_threshold))
        if drift is None:
            continue
        languages[name] = drift
        if drift["drifted"]:
            violations.append({"metric_name": name, "constraint_check_type": "language_drift", "description": (
                f"{name.replace('_', ' ')}s drifted ({_score_text(drift)}; largest share change "
                f"{drift['linf']:.1%}): baseline "
                f"{_shares(drift['baseline'])}; window {_shares(drift['window'])}")})
    return {"status": "CompletedWithViolations" if violations else "Completed", "violations": violations,
            "metrics": metrics, "comparison": comparison.to_dict(), "languages": languages, **counts}


# -- for reports ---------------------------------------------------------------------------------------
def score_distributions(baseline: LoadedRun, window: LoadedRun, *, bins: int = 10) -> dict[str, Any]:
    """Each per-record score's baseline and window shares on the same bins, in data quality's
    layout (`data_quality.distributions`), for reports: refusal as refused or answered, the
    others on equal-width bins over both ranges. Error records have no scores, and are left out."""
    import numpy as np

    def values(run: LoadedRun) -> dict[str, np.ndarray]:
        names = [spec.name for spec in run.summary.metrics] or sorted(
            {name for line in run.records() for name in line["scores"]})
        _, arrays = run.score_arrays(names)
        return {name: array[~np.isnan(array)] for name, array in arrays.items()}

    reference, current = values(baseline), values(window)
    shown: dict[str, Any] = {}
    for name, ref in reference.items():
        cur = current.get(name)
        if cur is None or not len(ref) or not len(cur):
            continue
        if name == REFUSAL:
            shares = [[float(np.mean(side == 1)), float(np.mean(side != 1))] for side in (ref, cur)]
            shown[name] = {"type": "categorical", "values": ["refused", "answered"], "baseline": shares[0],
                           "current": shares[1]}
            continue
        low, high = float(min(ref.min(), cur.min())), float(max(ref.max(), cur.max()))
        edges = np.linspace(low, high, bins + 1) if high > low else np.array([low - 0.5, low + 0.5])
        shares = [(np.histogram(side, bins=edges)[0] / len(side)).tolist() for side in (ref, cur)]
        shown[name] = {"type": "numerical", "edges": edges.tolist(), "baseline": shares[0], "current": shares[1]}
    return shown
