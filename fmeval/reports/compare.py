"""Compare two runs of the same evaluation and dataset, metric by metric, and gate on regressions.

With record ids shared by both runs the difference is a paired bootstrap over those records
(95% CI and a two-sided p-value); otherwise each run is resampled on its own (unpaired).
Dataset-level metrics that are not means of per-record scores (e.g. balanced accuracy) are
compared by value only. Which way is better comes from each metric's spec in the baseline's
summary, as the evaluation declared it.

Runs graded by judges (model_graded) are comparable only when graded alike: the same judges
(model and generation options), criterion, template, rubric and grades. A change of judge would
otherwise read as a change of the model. `allow_different_judges` compares them anyway, and the
comparison says so.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from fmeval.errors import UserError
from fmeval.runs.loaded import LoadedRun
from fmeval.scores import MetricSpec
from fmeval.stats import bootstrap_means, bootstrap_p_value, percentile_interval

_GATE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=|<|>)\s*(-?[0-9.]+(?:[eE]-?[0-9]+)?)\s*$")
_DROP = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*([0-9.]+(?:[eE]-?[0-9]+)?)\s*$")


class IncomparableRuns(UserError):
    """The two runs do not measure the same thing (another evaluation, dataset or judge)."""


GRADING_KEYS = ("judges", "judge", "criterion", "judge_format", "template", "rubric", "scale", "grades",
                "grade_pattern", "probability_weighted", "aggregate", "pass_threshold", "baseline_run")
"""The keys of a graded run's evaluation config that say how it was graded ("judge": runs before panels)."""


@dataclass
class MetricComparison:
    name: str
    direction: str
    """'higher' or 'lower' is better, or 'target:<ideal>'."""
    higher_is_better: bool | None
    ideal: float | None
    baseline: float | None
    candidate: float | None
    delta: float | None
    ci_lower: float | None = None
    ci_upper: float | None = None
    p_value: float | None = None
    method: str = "value only"
    n_baseline: int = 0
    n_candidate: int = 0
    n_paired: int = 0

    @property
    def worsening(self) -> float | None:
        """How much worse the candidate is (negative: better), in the metric's own units."""
        if self.baseline is None or self.candidate is None:
            return None
        return MetricSpec(self.name, self.higher_is_better, self.ideal).worsening(self.baseline, self.candidate)

    @property
    def significant(self) -> bool:
        """The 95% CI of the difference excludes 0, and p < 0.05 (on a few pairs, the exact test's p)."""
        return (self.ci_lower is not None and (self.ci_lower > 0 or self.ci_upper < 0)  # type: ignore[operator]
                and (self.p_value is None or self.p_value < 0.05))


@dataclass
class GateResult:
    gate: str
    metric: str
    passed: bool
    detail: str


@dataclass
class Comparison:
    evaluation: str
    dataset: str
    baseline: str
    candidate: str
    method: str
    metrics: list[MetricComparison]
    gates: list[GateResult] = field(default_factory=list)
    judges_differ: list[str] = field(default_factory=list)
    """How the two runs' grading differs, when compared with `allow_different_judges`."""

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    def metric(self, name: str) -> MetricComparison:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise UserError(f"no metric {name!r} in these runs; they have {', '.join(m.name for m in self.metrics)}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for metric, raw in zip(self.metrics, data["metrics"]):
            raw.update(worsening=metric.worsening, significant=metric.significant)
        data["passed"] = self.passed
        return data


def grading_differences(baseline: LoadedRun, candidate: LoadedRun) -> list[str]:
    """Each way the runs' grading differs, as `key: baseline value vs candidate value`."""
    a, b = (_flat({key: run.summary.config.get("evaluation", {}).get(key) for key in GRADING_KEYS})
            for run in (baseline, candidate))
    return [f"{key}: {_short(a.get(key))} vs {_short(b.get(key))}" for key in dict.fromkeys([*a, *b])
            if a.get(key) != b.get(key)]


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists as one mapping of dotted paths (judges.0.model), leaves kept."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value} if prefix and value is not None else {}
    return {path: leaf for key, item in items for path, leaf in _flat(item, f"{prefix}.{key}" if prefix else key).items()}


def _short(value: Any) -> str:
    text = "(none)" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_comparable(baseline: LoadedRun, candidate: LoadedRun, *, allow_different_judges: bool = False) -> list[str]:
    """Raise IncomparableRuns unless the runs measure the same thing; the ways their grading
    differs, when `allow_different_judges`."""
    a, b = baseline.summary, candidate.summary
    if a.eval_name != b.eval_name:
        raise IncomparableRuns(f"the runs are of different evaluations ({a.eval_name} vs {b.eval_name})")
    if a.dataset_name != b.dataset_name or a.dataset.get("sha256") != b.dataset.get("sha256"):
        raise IncomparableRuns(
            f"the runs are on different datasets ({a.dataset_name} {a.dataset.get('sha256')} vs "
            f"{b.dataset_name} {b.dataset.get('sha256')})"
        )
    differences = grading_differences(baseline, candidate)
    if differences and not allow_different_judges:
        raise IncomparableRuns(
            "the runs were graded differently, so a difference in scores may be the judges' and not the model's: "
            + "; ".join(differences) + ". Grade both runs with the same judge, or compare them anyway with "
            "--allow-different-judges")
    return differences


def compare_runs(baseline: LoadedRun, candidate: LoadedRun, *, n_bootstrap: int = 2000, seed: int = 0,
                 paired: bool | None = None, allow_different_judges: bool = False) -> Comparison:
    """Each metric's difference (candidate - baseline) with a 95% bootstrap CI and p-value.

    `paired`: None (default) pairs the records whose ids both runs hold, when they share any;
    False resamples each run on its own even so (e.g. windows of live traffic that share a few
    ids by chance); True requires shared ids. Runs graded by different judges are refused
    unless `allow_different_judges`.
    """
    judges_differ = check_comparable(baseline, candidate, allow_different_judges=allow_different_judges)
    base_scores = {s.name: s for s in baseline.summary.dataset_scores}
    cand_scores = {s.name: s for s in candidate.summary.dataset_scores}
    names = [name for name in base_scores if name in cand_scores]
    specs = {name: baseline.spec(name) for name in names}
    per_record = [name for name in names if specs[name].per_record]
    base_ids, base_values = baseline.score_arrays(per_record)
    cand_ids, cand_values = candidate.score_arrays(per_record)
    shared = bool(set(base_ids) & set(cand_ids))
    if paired and not shared:
        raise UserError("a paired comparison needs record ids that both runs hold; these runs share none")
    paired = shared if paired is None else paired
    rng = np.random.default_rng(seed)
    metrics = []
    for name in names:
        spec = specs[name]
        result = MetricComparison(name=name, direction=spec.direction, higher_is_better=spec.higher_is_better,
                                  ideal=spec.ideal, baseline=base_scores[name].value,
                                  candidate=cand_scores[name].value, delta=None)
        if result.baseline is not None and result.candidate is not None:
            result.delta = result.candidate - result.baseline
        if name in per_record:
            _bootstrap(result, base_ids, base_values[name], cand_ids, cand_values[name], paired, n_bootstrap, rng)
        metrics.append(result)
    method = "paired bootstrap" if paired else "unpaired bootstrap"
    return Comparison(baseline.summary.eval_name, baseline.summary.dataset_name, baseline.label, candidate.label,
                      method, metrics, judges_differ=judges_differ)


def _bootstrap(result: MetricComparison, base_ids: list[str], base: np.ndarray, cand_ids: list[str],
               cand: np.ndarray, paired: bool, n_bootstrap: int, rng: np.random.Generator) -> None:
    base_ok, cand_ok = np.isfinite(base), np.isfinite(cand)
    result.n_baseline, result.n_candidate = int(base_ok.sum()), int(cand_ok.sum())
    if paired:
        position = {record_id: i for i, record_id in enumerate(cand_ids)}
        pairs = [(i, position[r]) for i, r in enumerate(base_ids) if r in position and base_ok[i] and cand_ok[position[r]]]
        if len(pairs) < 2:
            return
        rows = np.asarray(pairs)
        differences = cand[rows[:, 1]] - base[rows[:, 0]]
        samples = bootstrap_means(differences, n_bootstrap=n_bootstrap, rng=rng)
        result.method, result.n_paired = "paired bootstrap", len(pairs)
    else:
        a, b = base[base_ok], cand[cand_ok]
        if a.size < 2 or b.size < 2:
            return
        samples = bootstrap_means(b, n_bootstrap=n_bootstrap, rng=rng) - bootstrap_means(a, n_bootstrap=n_bootstrap, rng=rng)
        result.method = "unpaired bootstrap"
    result.ci_lower, result.ci_upper = percentile_interval(samples)
    result.p_value = bootstrap_p_value(samples)
    if paired and len(differences) <= EXACT_PAIRS:  # the bootstrap of a few pairs is far too sure of itself
        result.p_value = max(result.p_value, sign_flip_p_value(differences))


EXACT_PAIRS = 16
"""Up to this many pairs, the p-value is also that of the exact sign-flip test (2^n sign patterns)."""


def sign_flip_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of the exact paired permutation test: the share of the 2^n sign patterns of the
    differences whose mean is at least as far from 0 as the observed mean."""
    n = len(differences)
    signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2 - 1
    means = np.abs(signs @ differences) / n
    return float(np.mean(means >= abs(differences.mean()) - 1e-12))


def parse_gates(fail_if: Sequence[str], max_drop: Sequence[str]) -> list[tuple[str, str, str, float]]:
    """('fail-if'|'max-drop', metric, operator, threshold) for each gate, or a UserError saying which is malformed."""
    gates = []
    for text in fail_if:
        match = _GATE.match(text)
        if not match:
            raise UserError(f"--fail-if {text!r}: write METRIC<VALUE (or <=, >, >=), e.g. f1_score<0.70")
        gates.append(("fail-if", match[1], match[2], float(match[3])))
    for text in max_drop:
        match = _DROP.match(text)
        if not match:
            raise UserError(f"--max-drop {text!r}: write METRIC=AMOUNT, e.g. f1_score=0.02")
        gates.append(("max-drop", match[1], "=", float(match[2])))
    return gates


def apply_gates(comparison: Comparison, gates: Sequence[tuple[str, str, str, float]], *,
                require_significant: bool = False) -> Comparison:
    """Fill `comparison.gates`: absolute thresholds on the candidate, and drops from the baseline
    (a drop counts only if significant, with `require_significant`)."""
    checks = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
    for kind, name, operator, threshold in gates:
        metric = comparison.metric(name)
        if metric.candidate is None:
            comparison.gates.append(GateResult(f"{name}{operator}{threshold}", name, False, "no value in the candidate"))
            continue
        if kind == "fail-if":
            failed = bool(checks[operator](metric.candidate, threshold))
            detail = f"candidate {metric.candidate:.4f} {'is' if failed else 'is not'} {operator} {threshold}"
            comparison.gates.append(GateResult(f"--fail-if {name}{operator}{threshold}", name, not failed, detail))
            continue
        drop = metric.worsening
        failed = drop is not None and drop > threshold
        if failed and require_significant and not metric.significant:
            failed = False
            detail = f"worse by {drop:.4f} > {threshold}, but the 95% CI includes 0: not significant"
        else:
            detail = f"worse by {drop:.4f} (allowed {threshold})" if drop is not None else "no baseline value"
        comparison.gates.append(GateResult(f"--max-drop {name}={threshold}", name, not failed, detail))
    return comparison


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def to_markdown(comparison: Comparison, *, top: int | None = None) -> str:
    """A summary for a pull-request comment: the metrics, largest changes first, and the gates."""
    rows = sorted(comparison.metrics, key=lambda m: -abs(m.delta or 0.0))[:top]
    lines = [
        f"### fmeval: {comparison.evaluation} on {comparison.dataset}",
        "",
        f"Baseline **{comparison.baseline}** vs candidate **{comparison.candidate}** ({comparison.method}).",
        "",
        *(["**Graded by different judges** (compared with --allow-different-judges): a difference may be the "
            "judges', not the model's.", "", *[f"- {difference}" for difference in comparison.judges_differ], ""]
          if comparison.judges_differ else []),
        "| metric | baseline | candidate | delta | 95% CI of delta | p | |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for m in rows:
        interval = f"[{_number(m.ci_lower)}, {_number(m.ci_upper)}]" if m.ci_lower is not None else "n/a"
        mark = ""
        if m.worsening is not None and m.worsening > 0:
            mark = "worse" + (" (significant)" if m.significant else "")
        elif m.worsening is not None and m.worsening < 0:
            mark = "better" + (" (significant)" if m.significant else "")
        delta = "n/a" if m.delta is None else f"{m.delta:+.4f}"
        lines.append(f"| {m.name} | {_number(m.baseline)} | {_number(m.candidate)} | {delta} | {interval} | "
                     f"{_number(m.p_value, 3)} | {mark} |")
    if comparison.gates:
        lines += ["", f"**{'PASSED' if comparison.passed else 'FAILED'}**", ""]
        lines += [f"- {'pass' if g.passed else 'FAIL'}: `{g.gate}`: {g.detail}" for g in comparison.gates]
    return "\n".join(lines) + "\n"
