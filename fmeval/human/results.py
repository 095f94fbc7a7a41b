"""A rating job's results as a run, its raw ratings out and in, and a judge's agreement with them.

The run has one record per item. Its scores, per rated model (`m1`, `m2`, ... in the order the
runs were given; the summary's `model.runs` says which is which): `thumbs_up_m1` (the share of
raters giving a thumb up), `likert_m1` (the mean grade), `win_rate_m1` (from rankings: 1 for
each other output ranked below, 0.5 for a tie, averaged). Means come with bootstrap CIs as in
any run. Inter-rater agreement is Krippendorff's alpha per rating kind (nominal for thumbs,
ordinal for grades and ranks, over every (item, output) rated by two raters or more), with a CI
from resampling the items; Cohen's kappa for each pair of raters is in the summary's config.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from itertools import combinations
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fmeval.algorithms.base import RecordResult
from fmeval.datasets.record import Record
from fmeval.errors import DataError, UserError
from fmeval.human.job import Job, RatingKind
from fmeval.runs.aggregate import aggregate
from fmeval.runs.directory import RunDirectory
from fmeval.runs.summary import EvalOutput
from fmeval.scores import MetricSpec
from fmeval.version import __version__

LEVELS = {"thumbs": "nominal", "likert": "ordinal", "ranking": "ordinal"}
EXPORT_FIELDS = ("item_id", "record_id", "rater_id", "kind", "output", "run_id", "value", "source", "rated_at")


def _metric_name(kind: RatingKind) -> str:
    return {"thumbs": "thumbs_up", "likert": "likert", "ranking": "win_rate"}[kind.name]


def krippendorff_alpha(matrix: np.ndarray, level: str) -> float:
    """Alpha of a raters x units matrix (NaN where a rater did not rate a unit)."""
    import krippendorff

    values = matrix[:, (~np.isnan(matrix)).sum(axis=0) >= 2]  # pairable units only
    if values.shape[1] == 0 or len(np.unique(values[~np.isnan(values)])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=values, level_of_measurement=level))


def _per_output_scores(kind: RatingKind, answers: list[list[int]]) -> list[float]:
    """One score per output from the raters' answers to one kind of question on an item."""
    table = np.asarray(answers, dtype=float)  # raters x outputs
    if kind.name != "ranking":
        return table.mean(axis=0).tolist()
    outputs = table.shape[1]
    wins = np.zeros(outputs)
    for i in range(outputs):
        for j in range(outputs):
            if i != j:
                wins[i] += np.mean(np.where(table[:, i] < table[:, j], 1.0, np.where(table[:, i] == table[:, j], 0.5, 0.0)))
    return (wins / (outputs - 1)).tolist()


def _agreement_metric(kind: RatingKind, raters: list[str]) -> Callable[[Sequence[RecordResult]], float]:
    def alpha(results: Sequence[RecordResult]) -> float:
        columns = []
        for result in results:
            by_rater = result.extras["ratings"].get(kind.key, {})
            outputs = len(result.extras["outputs"])
            for output in range(outputs):
                columns.append([by_rater[r][output] if r in by_rater else np.nan for r in raters])
        return krippendorff_alpha(np.asarray(columns, dtype=float).T, LEVELS[kind.name])

    return alpha


def scale_of(kind: RatingKind, outputs: int) -> list[int]:
    """Every answer a question allows, used or not: weighted kappa measures distances on this scale."""
    low, high = {"thumbs": (0, 1), "likert": (1, kind.scale or 0), "ranking": (1, outputs)}[kind.name]
    return list(range(low, high + 1))


def cohen_kappas(job: Job, kind: RatingKind) -> dict[str, float]:
    """Cohen's kappa of each pair of raters over the (item, output) pairs both rated (linear
    weights for grades and ranks, over the job's whole scale); pairs with fewer than two shared
    answers are left out."""
    from sklearn.metrics import cohen_kappa_score

    answers: dict[str, dict[tuple[int, int], int]] = {}
    for rating in job.ratings():
        for output, value in enumerate(rating["rating"].get(kind.key, [])):
            answers.setdefault(rating["rater_id"], {})[(rating["item_id"], output)] = value
    kappas = {}
    for a, b in combinations(sorted(answers), 2):
        shared = sorted(answers[a].keys() & answers[b].keys())
        if len(shared) < 2:
            continue
        x, y = [answers[a][k] for k in shared], [answers[b][k] for k in shared]
        if len(set(x) | set(y)) < 2:
            continue
        kappa = cohen_kappa_score(x, y, labels=scale_of(kind, len(job.meta["runs"])),
                                  weights=None if kind.name == "thumbs" else "linear")
        kappas[f"{a}|{b}"] = float(kappa)
    return kappas


def write_results(directory: str | Path, output: str | Path, *, n_bootstrap: int = 1000, seed: int = 0) -> EvalOutput:
    """The job's results as a run in `output` (rewritten each time: ratings may have been added)."""
    job = Job(directory)
    try:
        by_item: dict[int, list[dict[str, Any]]] = {}
        for rating in job.ratings():
            by_item.setdefault(rating["item_id"], []).append(rating)
        slots = [f"m{i + 1}" for i in range(len(job.meta["runs"]))]
        scored_kinds = [k for k in job.kinds if k.name != "free-text"]
        results, lines = [], []
        for item in job.items():
            ratings = by_item.get(item["item_id"], [])
            record = Record(record_id=item["record_id"], location=f"item {item['item_id']}",
                            model_input=item.get("model_input"), target_output=item.get("target_output"))
            scores: dict[str, float | None] = {}
            per_kind: dict[str, dict[str, list[int]]] = {}
            for kind in scored_kinds:
                answers = {r["rater_id"]: r["rating"][kind.key] for r in ratings if kind.key in r["rating"]}
                per_kind[kind.key] = answers
                values = _per_output_scores(kind, list(answers.values())) if answers else [None] * len(slots)
                scores.update({f"{_metric_name(kind)}_{slot}": v for slot, v in zip(slots, values)})
            comments = [r["rating"]["free-text"] for r in ratings if r["rating"].get("free-text")]
            extras = {"outputs": dict(zip(slots, item["outputs"])), "ratings": per_kind, "raters": len(ratings),
                      "comments": comments}
            error = None if ratings else "not rated yet"
            results.append(RecordResult(record, None, scores, error, extras))
            lines.append({"record_id": record.record_id, "location": record.location, "category": None,
                          "model_input": record.model_input, "prompt": item.get("prompt"), "model_output": None,
                          "target_output": record.target_output, "scores": scores, "error": error, **extras})
        raters = job.raters()
        score_names = [f"{_metric_name(k)}_{slot}" for k in scored_kinds for slot in slots]
        corpus = {f"krippendorff_alpha_{k.name}": _agreement_metric(k, raters) for k in scored_kinds}
        specs = [*(MetricSpec(f"{_metric_name(k)}_{slot}", higher_is_better=True,
                              range=(1.0, float(k.scale)) if k.name == "likert" else (0.0, 1.0))
                   for k in scored_kinds for slot in slots),
                 *(MetricSpec(name, higher_is_better=True, range=(-1.0, 1.0), per_record=False) for name in corpus)]
        run_dir = RunDirectory(output)
        identity = {"human_job": str(Path(directory).resolve()), "created_at": job.meta["created_at"]}
        with run_dir.writing(identity, overwrite=True) as writer:
            writer.append(lines)
            summary = EvalOutput(
                eval_name="human", dataset_name=job.meta["title"], run_id=writer.run_id,
                dataset_scores=_defined(aggregate(results, score_names, corpus, n_bootstrap=n_bootstrap, seed=seed)),
                metrics=specs, output_path=str(run_dir.path), num_records=len(results),
                num_errors=sum(1 for r in results if r.error is not None),
                model={"type": "human", "runs": dict(zip(slots, job.meta["runs"]))},
                dataset={"job": str(Path(directory).resolve()), "items": len(results)},
                config={"kinds": [k.key for k in job.kinds], "raters": len(raters), "per_item": job.meta["per_item"],
                        "seed": job.meta["seed"], "n_bootstrap": n_bootstrap,
                        "agreement": {"cohen_kappa": {k.key: cohen_kappas(job, k) for k in scored_kinds}}},
                seed=seed, fmeval_version=__version__,
                created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
            writer.finish(summary)
        return summary
    finally:
        job.close()


def _defined(scores: list[Any]) -> list[Any]:
    """Agreement needs two raters on an output with two different values somewhere: else it is
    reported as undefined, with the reason, not as NaN."""
    reason = "undefined: no output was rated by two raters, or every answer was the same"
    return [dataclasses.replace(score, value=None, ci_lower=None, ci_upper=None, error=reason)
            if score.value is not None and np.isnan(score.value) else score for score in scores]


# -- raw ratings out and in --------------------------------------------------------------------------
def export_ratings(directory: str | Path, fmt: str = "csv") -> str:
    """Every answer, one row per (rating, output) (free text: one row per item), as CSV or JSON Lines."""
    job = Job(directory)
    try:
        runs = job.meta["runs"]
        rows = []
        for rating in job.ratings():
            for kind in job.kinds:
                given = rating["rating"].get(kind.key)
                if given is None:
                    continue
                base = {"item_id": rating["item_id"], "record_id": rating["record_id"], "rater_id": rating["rater_id"],
                        "kind": kind.key, "source": rating["source"], "rated_at": rating["rated_at"]}
                if kind.name == "free-text":
                    rows.append({**base, "output": "", "run_id": "", "value": given})
                else:
                    rows.extend({**base, "output": i + 1, "run_id": runs[i]["run_id"], "value": v}
                                for i, v in enumerate(given))
    finally:
        job.close()
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def import_ratings(directory: str | Path, path: str | Path) -> int:
    """Ratings made elsewhere (a spreadsheet saved as CSV, or JSON Lines) in the export's layout:
    item_id (or record_id), rater_id, kind, output (1-based), value. Each (item, rater) must be
    assigned in the job and complete for every kind; rows are checked before anything is saved."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}", f"invalid JSON: {exc.msg}") from None
    else:
        rows = [(f"{path}:{number}", row) for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=2)]
    job = Job(directory)
    try:
        by_record = {item["record_id"]: item["item_id"] for item in job.items()}
        kinds = {kind.key: kind for kind in job.kinds}
        gathered: dict[tuple[int, str], dict[str, Any]] = {}
        for where, row in rows:
            try:
                item_id = int(row["item_id"]) if str(row.get("item_id", "")).strip() else by_record[str(row["record_id"])]
                rater, kind = str(row["rater_id"]), kinds[str(row["kind"])]
            except (KeyError, ValueError) as exc:
                raise DataError(where, f"needs item_id (or a known record_id), rater_id and a kind of this job "
                                       f"({', '.join(kinds)}): {exc}") from None
            answer = gathered.setdefault((item_id, rater), {})
            if kind.name == "free-text":
                answer[kind.key] = str(row.get("value", ""))
            else:
                outputs = len(job.meta["runs"])
                slot = answer.setdefault(kind.key, [None] * outputs)
                try:
                    slot[int(row["output"]) - 1] = row["value"]
                except (KeyError, ValueError, IndexError):
                    raise DataError(where, f"output must be 1..{outputs}, got {row.get('output')!r}") from None
        for (item_id, rater), answer in gathered.items():  # check all before saving any
            if job.assignment(rater, item_id) is None:
                raise UserError(f"{path}: item {item_id} is not assigned to {rater} in this job")
            job.check(answer, len(job.meta["runs"]))
        for (item_id, rater), answer in gathered.items():
            job.save_rating(rater, item_id, answer, source=f"import:{path.name}")
        return len(gathered)
    finally:
        job.close()


# -- a judge against the humans ---------------------------------------------------------------------
def judge_agreement(judge_run: Any, human_run: Any, *, judge_metric: str, human_metric: str,
                    n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Spearman's correlation between a judge's per-record scores and the humans' (e.g. the mean
    likert grade of the same model), over the records both scored, with a bootstrap CI."""
    from scipy.stats import spearmanr

    from fmeval.stats import bootstrap_statistic_ci

    judge_ids, judge_scores = judge_run.score_arrays([judge_metric])
    human_ids, human_scores = human_run.score_arrays([human_metric])
    judged = dict(zip(judge_ids, judge_scores[judge_metric]))
    pairs = [(judged[i], h) for i, h in zip(human_ids, human_scores[human_metric])
             if i in judged and not np.isnan(judged[i]) and not np.isnan(h)]
    if len(pairs) < 3:
        raise UserError(f"the judge and the humans share {len(pairs)} scored record(s): at least 3 are needed")
    x, y = np.array(pairs).T

    def rho(indices: np.ndarray) -> float:
        value = spearmanr(x[indices], y[indices]).statistic
        return float(value) if np.isfinite(value) else float("nan")

    ci = bootstrap_statistic_ci(rho, len(x), n_bootstrap=n_bootstrap, seed=seed)
    return {"spearman": rho(np.arange(len(x))), "ci_lower": ci[0] if ci else None, "ci_upper": ci[1] if ci else None,
            "records": len(x), "judge_metric": judge_metric, "human_metric": human_metric}
