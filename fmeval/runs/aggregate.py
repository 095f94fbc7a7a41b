"""From per-record results to dataset and per-category scores, each with a seeded 95% bootstrap CI.

Results are put in record-id order first: records are written in completion order, which
varies between runs of the same model, and the bootstrap must not.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from fmeval.algorithms.base import CorpusMetric, RecordResult
from fmeval.scores import CategoryScore, EvalScore
from fmeval.stats import bootstrap_mean_ci, bootstrap_statistic_ci

NOTHING_SCORED = "no record could be scored"
UNDEFINED = "undefined on these records (e.g. an agreement where every value is the same)"


def aggregate(
    results: Sequence[RecordResult],
    score_names: Sequence[str],
    corpus_metrics: dict[str, CorpusMetric],
    *,
    n_bootstrap: int,
    seed: int,
) -> list[EvalScore]:
    """Mean of each per-record score with a bootstrap CI, then each corpus metric with one."""
    results = sorted(results, key=lambda result: result.record.record_id)
    scores: list[EvalScore] = []
    for name in score_names:
        values = [r.scores.get(name) for r in results]
        values = [v for v in values if v is not None]
        if not values:
            scores.append(EvalScore(name=name, value=None, error=NOTHING_SCORED, count=0))
            continue
        ci = bootstrap_mean_ci(values, n_bootstrap=n_bootstrap, seed=seed)
        scores.append(_score(name, float(np.mean(values)), ci, len(values)))
    scored = [r for r in results if r.error is None]
    for name, metric in corpus_metrics.items():
        if not scored:
            scores.append(EvalScore(name=name, value=None, error=NOTHING_SCORED, count=0))
            continue
        value = metric(scored)
        if np.isnan(value):
            scores.append(EvalScore(name=name, value=None, error=UNDEFINED, count=len(scored)))
            continue
        ci = bootstrap_statistic_ci(
            lambda indices: metric([scored[i] for i in indices]), len(scored), n_bootstrap=n_bootstrap, seed=seed
        )
        scores.append(_score(name, value, ci, len(scored)))
    return scores


def aggregate_by_category(
    results: Sequence[RecordResult],
    score_names: Sequence[str],
    corpus_metrics: dict[str, CorpusMetric],
    *,
    n_bootstrap: int,
    seed: int,
) -> list[CategoryScore]:
    by_category: dict[str, list[RecordResult]] = {}
    for result in results:
        if result.record.category is not None:
            by_category.setdefault(result.record.category, []).append(result)
    return [
        CategoryScore(
            name=category,
            scores=aggregate(members, score_names, corpus_metrics, n_bootstrap=n_bootstrap, seed=seed),
        )
        for category, members in sorted(by_category.items())
    ]


def _score(name: str, value: float, ci: tuple[float, float] | None, count: int) -> EvalScore:
    return EvalScore(
        name=name, value=value, ci_lower=ci[0] if ci else None, ci_upper=ci[1] if ci else None, count=count
    )
