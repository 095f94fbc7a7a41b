"""A rating job's results as a run, its raw ratings out and in, and a judge's agreement with them.

The run has one record per item (gold items are left out: they check the raters). Its scores, per
rated model, named after the model (the runs' labels, e.g. `likert_good`; the summary's
`model.runs` maps each name to its run): `thumbs_up_<model>` (the share of raters giving a thumb
up), `likert_<model>` (the mean grade), `win_rate_<model>` (from rankings: 1 for each other output
ranked below, 0.5 for a tie, averaged). Means come with bootstrap CIs as in any run.

Inter-rater agreement, per rating kind, over every (item, output) rated by two raters or more, with
a CI from resampling the items: Krippendorff's alpha (nominal for thumbs, ordinal for grades and
ranks) and Fleiss' kappa (nominal; over the outputs rated by `per_item` raters). Cohen's kappa for
each pair of raters (linear weights over the job's whole scale for grades and ranks) is in the
summary's config, with each rater's quality checks: accuracy on gold items, median seconds per
item, ratings replaced, and alpha without them; a rater whose removal raises alpha by
`DISAGREEMENT_FLAG` or more is flagged.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
import warnings
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
from fmeval.stats import bootstrap_statistic_ci
from fmeval.version import __version__

LEVELS = {"thumbs": "nominal", "likert": "ordinal", "ranking": "ordinal"}
EXPORT_FIELDS = ("item_id", "record_id", "rater_id", "kind", "output", "run_id", "value", "source", "rated_at",
                 "revision", "current")
DISAGREEMENT_FLAG = 0.1
"""A rater is flagged when alpha without them is at least this much above alpha with everyone."""


def _metric_name(kind: RatingKind) -> str:
    return {"thumbs": "thumbs_up", "likert": "likert", "ranking": "win_rate"}[kind.name]


def model_slots(runs: Sequence[dict[str, Any]]) -> list[str]:
    """A metric-safe name per rated run, from its label (the model's name), unique within the job."""
    slots: list[str] = []
    for run in runs:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(run.get("label") or "model")).strip("_") or "model"
        slot, n = base, 2
        while slot in slots:
            slot, n = f"{base}_{n}", n + 1
        slots.append(slot)
    return slots


def scale_of(kind: RatingKind, outputs: int) -> list[int]:
    """Every answer a question allows, used or not: weighted kappa measures distances on this scale."""
    low, high = {"thumbs": (0, 1), "likert": (1, kind.scale or 0), "ranking": (1, outputs)}[kind.name]
    return list(range(low, high + 1))


def krippendorff_alpha(matrix: np.ndarray, level: str) -> float:
    """Alpha of a raters x units matrix (NaN where a rater did not rate a unit)."""
    import krippendorff

    values = matrix[:, (~np.isnan(matrix)).sum(axis=0) >= 2]  # pairable units only
    if values.shape[1] == 0 or len(np.unique(values[~np.isnan(values)])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=values, level_of_measurement=level))


def fleiss_kappa(answers: np.ndarray, categories: Sequence[int]) -> float:
    """Fleiss' kappa of a units x raters table of answers (the same number of raters per unit,
    not necessarily the same raters), counting answers over the whole scale `categories`."""
    if answers.shape[0] == 0 or answers.shape[1] < 2:
        return float("nan")
    counts = np.stack([(answers == category).sum(axis=1) for category in categories], axis=1).astype(float)
    raters = answers.shape[1]
    chance = float(np.sum((counts.sum(axis=0) / counts.sum()) ** 2))
    observed = float(np.mean((np.sum(counts ** 2, axis=1) - raters) / (raters * (raters - 1))))
    return float("nan") if chance == 1 else (observed - chance) / (1 - chance)


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


def _rating_matrix(results: Sequence[RecordResult], kind: RatingKind, raters: Sequence[str]) -> np.ndarray:
    """Raters x (item, output) units, NaN where a rater gave no answer."""
    columns = []
    for result in results:
        by_rater = result.extras["ratings"].get(kind.key, {})
        for output in range(len(result.extras["outputs"])):
            columns.append([by_rater[r][output] if r in by_rater else np.nan for r in raters])
    return np.asarray(columns, dtype=float).reshape(-1, len(raters)).T


def _agreement_metrics(kind: RatingKind, raters: list[str], per_item: int,
                       outputs: int) -> dict[str, Callable[[Sequence[RecordResult]], float]]:
    def alpha(results: Sequence[RecordResult]) -> float:
        return krippendorff_alpha(_rating_matrix(results, kind, raters), LEVELS[kind.name])

    def fleiss(results: Sequence[RecordResult]) -> float:
        rated = [result.extras["ratings"].get(kind.key, {}) for result in results]
        units = [[answer[output] for answer in by_rater.values()]
                 for by_rater in rated if len(by_rater) == per_item for output in range(outputs)]
        return fleiss_kappa(np.asarray(units, dtype=float).reshape(-1, per_item), scale_of(kind, outputs))

    return {f"krippendorff_alpha_{kind.name}": alpha, f"fleiss_kappa_{kind.name}": fleiss}


def cohen_kappas(job: Job, kind: RatingKind) -> dict[str, float]:
    """Cohen's kappa of each pair of raters over the (item, output) pairs both rated (linear
    weights for grades and ranks, over the job's whole scale); pairs with fewer than two shared
    answers are left out, and so are gold items, as from every other statistic of the results."""
    from sklearn.metrics import cohen_kappa_score

    gold = {item["item_id"] for item in job.items(gold=True)}
    answers: dict[str, dict[tuple[int, int], int]] = {}
    for rating in (r for r in job.ratings() if r["item_id"] not in gold):
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


def rater_quality(job: Job, results: Sequence[RecordResult], kinds: Sequence[RatingKind]) -> dict[str, dict[str, Any]]:
    """Each rater's checks: accuracy on gold items (the share of their answers to gold questions
    that match the known answer), median seconds per item (first rating, in the app), ratings
    replaced later, and Krippendorff's alpha of the others without them (3 raters or more)."""
    raters = job.raters()
    gold = {item["item_id"]: item["answer"] for item in job.items(gold=True)}
    matched: dict[str, list[bool]] = {rater: [] for rater in raters}
    for rating in job.ratings():
        known = gold.get(rating["item_id"])
        for key, answer in (known or {}).items():
            given = rating["rating"].get(key, [])
            matched[rating["rater_id"]].extend(a == b for a, b in zip(given, answer))
    firsts = job.first_ratings()
    quality: dict[str, dict[str, Any]] = {}
    for rater in raters:
        seconds = [f["seconds"] for f in firsts if f["rater_id"] == rater and f["seconds"] is not None]
        answers = matched[rater]
        quality[rater] = {
            "items_rated": sum(1 for f in firsts if f["rater_id"] == rater and f["item_id"] not in gold),
            "gold_answers": len(answers), "gold_accuracy": float(np.mean(answers)) if answers else None,
            "median_seconds_per_item": float(np.median(seconds)) if seconds else None,
            "ratings_replaced": sum(f["revisions"] - 1 for f in firsts if f["rater_id"] == rater),
            "alpha_without": {}, "flagged": None}
    if len(raters) < 3:
        return quality
    for kind in kinds:
        everyone = krippendorff_alpha(_rating_matrix(results, kind, raters), LEVELS[kind.name])
        for rater in raters:
            others = [r for r in raters if r != rater]
            without = krippendorff_alpha(_rating_matrix(results, kind, others), LEVELS[kind.name])
            quality[rater]["alpha_without"][kind.key] = None if np.isnan(without) else without
            if not np.isnan(everyone) and not np.isnan(without) and without - everyone >= DISAGREEMENT_FLAG:
                reason = f"disagrees with the others on {kind.key}: alpha is {everyone:.3f} with everyone, " \
                         f"{without:.3f} without {rater}"
                quality[rater]["flagged"] = "; ".join(filter(None, [quality[rater]["flagged"], reason]))
    return quality


def write_results(directory: str | Path, output: str | Path, *, n_bootstrap: int = 1000, seed: int = 0,
                  store: str | Path | None = None) -> EvalOutput:
    """The job's results as a run in `output` (rewritten each time: ratings may have been added),
    indexed in the run store like any run."""
    job = Job(directory)
    try:
        by_item: dict[int, list[dict[str, Any]]] = {}
        for rating in job.ratings():
            by_item.setdefault(rating["item_id"], []).append(rating)
        slots = model_slots(job.meta["runs"])
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
        outputs = len(slots)
        score_names = [f"{_metric_name(k)}_{slot}" for k in scored_kinds for slot in slots]
        corpus = {name: metric for k in scored_kinds
                  for name, metric in _agreement_metrics(k, raters, job.meta["per_item"], outputs).items()}
        specs = [*(MetricSpec(f"{_metric_name(k)}_{slot}", higher_is_better=True,
                              range=(1.0, float(k.scale)) if k.name == "likert" else (0.0, 1.0))
                   for k in scored_kinds for slot in slots),
                 *(MetricSpec(name, higher_is_better=True, range=(-1.0, 1.0), per_record=False) for name in corpus)]
        labels = [run["label"] for run in job.meta["runs"]]
        run_dir = RunDirectory(output)
        identity = {"human_job": str(Path(directory).resolve()), "created_at": job.meta["created_at"]}
        with run_dir.writing(identity, overwrite=True) as writer:
            writer.append(lines)
            summary = EvalOutput(
                eval_name="human", dataset_name=job.meta["title"], run_id=writer.run_id,
                dataset_scores=_defined(aggregate(results, score_names, corpus, n_bootstrap=n_bootstrap, seed=seed)),
                metrics=specs, output_path=str(run_dir.path), num_records=len(results),
                num_errors=sum(1 for r in results if r.error is not None),
                model={"type": "human", "model": " vs ".join(labels), "runs": dict(zip(slots, job.meta["runs"]))},
                dataset={"job": str(Path(directory).resolve()), "items": len(results)},
                config={"kinds": [k.key for k in job.kinds], "raters": len(raters), "per_item": job.meta["per_item"],
                        "seed": job.meta["seed"], "n_bootstrap": n_bootstrap,
                        "gold_rate": job.meta.get("gold_rate", 0),
                        "agreement": {"cohen_kappa": {k.key: cohen_kappas(job, k) for k in scored_kinds}},
                        "rater_quality": rater_quality(job, results, scored_kinds)},
                seed=seed, fmeval_version=__version__,
                created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
            writer.finish(summary)
    finally:
        job.close()
    from fmeval.runs.store import RunStore

    with RunStore(store) as run_store:
        run_store.index(summary, run_id=summary.run_id)  # type: ignore[arg-type]
    return summary


def _defined(scores: list[Any]) -> list[Any]:
    """Agreement needs two raters on an output with two different values somewhere: else it is
    reported as undefined, with the reason, not as NaN."""
    reason = "undefined: no output was rated by two raters, or every answer was the same"
    return [dataclasses.replace(score, value=None, ci_lower=None, ci_upper=None, error=reason)
            if score.value is not None and np.isnan(score.value) else score for score in scores]


# -- raw ratings out and in --------------------------------------------------------------------------
def export_ratings(directory: str | Path, fmt: str = "csv", *, history: bool = False) -> str:
    """Every answer, one row per (rating, output) (free text: one row per item), as CSV or JSON
    Lines; with `history`, every revision of each rating (`current` marks the one in force)."""
    job = Job(directory)
    try:
        runs = job.meta["runs"]
        rows = []
        for rating in job.ratings():
            revisions = (job.history(rating["rater_id"], rating["item_id"]) if history else
                         [{**rating, "revision": len(job.history(rating["rater_id"], rating["item_id"])) or 1}])
            for revision in revisions:
                for kind in job.kinds:
                    given = revision["rating"].get(kind.key)
                    if given is None:
                        continue
                    base = {"item_id": rating["item_id"], "record_id": rating["record_id"],
                            "rater_id": rating["rater_id"], "kind": kind.key, "source": revision["source"],
                            "rated_at": revision["rated_at"], "revision": revision["revision"],
                            "current": revision is revisions[-1]}
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


def _rows(path: Path) -> list[tuple[str, Any]]:
    """The file's rows with their file:line; JSON Lines keeps its values' types, so 3.7 or true
    where a grade belongs is refused later, never rounded."""
    from fmeval.datasets.readers import read_csv, read_jsonlines

    reader = read_jsonlines if path.suffix.lower() == ".jsonl" else read_csv
    rows = []
    try:
        for where, row in reader(str(path)):
            if isinstance(row, DataError):
                raise row
            if not isinstance(row, dict):
                raise DataError(where, f"a rating row is an object of {', '.join(EXPORT_FIELDS[:5])}, got {row!r}")
            rows.append((where, row))
    except OSError as exc:
        raise UserError(f"cannot read ratings from {path}: {exc.strerror or exc}") from None
    return rows


def import_ratings(directory: str | Path, path: str | Path) -> int:
    """Ratings made elsewhere (a spreadsheet saved as CSV, or JSON Lines) in the export's layout:
    item_id (or record_id), rater_id, kind, output (1-based), value. Each (item, rater) must be
    assigned in the job and complete for every kind; rows are checked before anything is saved."""
    path = Path(path)
    rows = _rows(path)
    job = Job(directory)
    try:
        by_record = {item["record_id"]: item["item_id"] for item in [*job.items(), *job.items(gold=True)]}
        kinds = {kind.key: kind for kind in job.kinds}
        outputs = len(job.meta["runs"])
        gathered: dict[tuple[int, str], tuple[str, dict[str, Any]]] = {}
        for where, row in rows:
            try:
                item_id = int(row["item_id"]) if str(row.get("item_id", "")).strip() else by_record[str(row["record_id"])]
                rater, kind = str(row["rater_id"]), kinds[str(row["kind"])]
            except (KeyError, ValueError) as exc:
                raise DataError(where, f"needs item_id (or a known record_id), rater_id and a kind of this job "
                                       f"({', '.join(kinds)}): {exc}") from None
            answer = gathered.setdefault((item_id, rater), (where, {}))[1]
            if kind.name == "free-text":
                answer[kind.key] = row.get("value", "")
                continue
            slot = answer.setdefault(kind.key, [None] * outputs)
            position = row.get("output")
            if isinstance(position, bool) or not str(position).strip().isdigit() or not 1 <= int(position) <= outputs:
                raise DataError(where, f"output must be 1..{outputs}, got {position!r}")
            slot[int(position) - 1] = row.get("value")
        for (item_id, rater), (where, answer) in gathered.items():  # check all before saving any
            if job.assignment(rater, item_id) is None:
                raise DataError(where, f"item {item_id} is not assigned to {rater} in this job")
            try:
                job.check(answer, outputs)
            except UserError as exc:
                raise DataError(where, str(exc)) from None
        for (item_id, rater), (_, answer) in gathered.items():
            job.save_rating(rater, item_id, answer, source=f"import:{path.name}")
        return len(gathered)
    finally:
        job.close()


# -- a judge against the humans ---------------------------------------------------------------------
def _human_metric(human_run: Any, metric: str) -> tuple[str, str]:
    """The kind's metric prefix and the model slot of a human run's metric (`likert_good`)."""
    if human_run.summary.eval_name != "human":
        raise UserError(f"--human-run {human_run.run_id} is a {human_run.summary.eval_name} run, not the output "
                        "of `fmeval human results`")
    slots = list(human_run.summary.model.get("runs", {}))
    for prefix in ("thumbs_up", "likert", "win_rate"):
        slot = metric[len(prefix) + 1:]
        if metric.startswith(prefix + "_") and slot in slots:
            return prefix, slot
    names = [spec.name for spec in human_run.summary.metrics if spec.per_record]
    raise UserError(f"--human-metric {metric!r} is not a per-model metric of {human_run.run_id}: "
                    f"one of {', '.join(names)}")


def judge_agreement(judge_run: Any, human_run: Any, *, judge_metric: str, human_metric: str,
                    n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """A judge against the humans over the records both scored, each statistic with a bootstrap
    CI from resampling records: Spearman's correlation between the judge's score and the humans'
    (e.g. the mean likert grade of the same model), and for likert Cohen's kappa (linear weights
    over the human scale) between the judge's grade and each rater's grade. The judge must have
    graded the very outputs the humans rated for that model; else this is refused."""
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    prefix, slot = _human_metric(human_run, human_metric)
    judged = {str(line["record_id"]): line for line in judge_run.records()}
    if judge_metric not in {spec.name for spec in judge_run.summary.metrics}:
        raise UserError(f"--judge-metric {judge_metric!r} is not a metric of {judge_run.run_id}: one of "
                        f"{', '.join(spec.name for spec in judge_run.summary.metrics)}")
    kind_key = next((k for k in human_run.summary.config.get("kinds", []) if k.split(":")[0] == prefix), None)
    pairs, kappa_pairs = [], []
    for line in human_run.records():
        record_id, human = str(line["record_id"]), line["scores"].get(human_metric)
        judge = judged.get(record_id)
        if judge is None or human is None or judge["scores"].get(judge_metric) is None:
            continue
        rated = line["outputs"][slot]
        if judge.get("model_output") != rated:
            raise UserError(f"the judge did not grade the outputs the humans rated for {slot}: record {record_id!r} "
                            f"was judged on {str(judge.get('model_output'))[:80]!r}, rated on {str(rated)[:80]!r}; "
                            f"give the judge run of {human_run.summary.model['runs'][slot]['run_id']}")
        pairs.append((judge["scores"][judge_metric], human))
        output = list(line["outputs"]).index(slot)
        kappa_pairs.append([(judge.get("grade"), answers[output])
                            for answers in line["ratings"].get(kind_key or "", {}).values()])
    if len(pairs) < 3:
        raise UserError(f"the judge and the humans share {len(pairs)} scored record(s): at least 3 are needed")
    x, y = np.array(pairs, dtype=float).T

    def rho(indices: np.ndarray) -> float:
        with warnings.catch_warnings():  # a resample of tied scores has no correlation: NaN, left out of the CI
            warnings.simplefilter("ignore")
            value = spearmanr(x[indices], y[indices]).statistic
        return float(value) if np.isfinite(value) else float("nan")

    result: dict[str, Any] = {"records": len(x), "judge_metric": judge_metric, "human_metric": human_metric}
    result["spearman"] = _with_ci(rho, len(x), n_bootstrap, seed)
    scale = judge_run.summary.config.get("evaluation", {}).get("scale")
    grades = [grade for record in kappa_pairs for grade, _ in record]
    if prefix != "likert":
        result["cohen_kappa"] = {"value": None, "reason": "Cohen's kappa is reported for likert grades"}
    elif f"likert:{scale}" != kind_key:
        result["cohen_kappa"] = {"value": None, "reason": f"the judge grades 1..{scale}, the humans {kind_key}"}
    elif any(grade is None or float(grade) != int(grade) for grade in grades):
        result["cohen_kappa"] = {"value": None, "reason": "the judge run has no whole-number grade on every record"}
    else:
        labels = list(range(1, int(scale) + 1))

        def kappa(indices: np.ndarray) -> float:
            chosen = [pair for i in indices for pair in kappa_pairs[i]]
            a, b = [int(judge) for judge, _ in chosen], [human for _, human in chosen]
            if len(set(a) | set(b)) < 2:
                return float("nan")
            return float(cohen_kappa_score(a, b, labels=labels, weights="linear"))

        result["cohen_kappa"] = _with_ci(kappa, len(kappa_pairs), n_bootstrap, seed)
    return result


def _with_ci(statistic: Callable[[np.ndarray], float], n: int, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """The statistic over every record, and its 95% CI from resampling the records."""
    value = statistic(np.arange(n))
    ci = bootstrap_statistic_ci(statistic, n, n_bootstrap=n_bootstrap, seed=seed)
    return {"value": None if np.isnan(value) else value, "ci_lower": ci[0] if ci else None,
            "ci_upper": ci[1] if ci else None}
