"""Classification accuracy: read a label out of each output, then compare with the target label."""
from __future__ import annotations

import string
import warnings
from typing import Any, Callable, Iterable, Mapping, Sequence

from fmeval.algorithms.base import CorpusMetric, GenerationAlgorithm, RecordResult
from fmeval.datasets.record import Record
from fmeval.errors import UserError
from fmeval.scores import MetricSpec

CLASSIFICATION_ACCURACY_SCORE = "classification_accuracy_score"
BALANCED_ACCURACY_SCORE = "balanced_accuracy_score"
PRECISION_SCORE = "precision_score"
RECALL_SCORE = "recall_score"
UNKNOWN_LABEL = "unknown"
AVERAGES = ("micro", "macro", "weighted")
Converter = Callable[[str, Sequence[str]], str]


def _clean(word: str) -> str:
    return word.lower().strip().strip(string.punctuation)


def make_label_converter(label_map: Mapping[str, str] | None = None) -> Converter:
    """The default output-to-label mapping: the first word of the output that is a valid label
    (or a key of `label_map`, read as its value), else "unknown".

    AWS fmeval's converter also takes the first matching word, but keeps trailing punctuation,
    so "The answer is 1." reads as "unknown"; here punctuation around a word is dropped.
    """
    aliases = {_clean(key): value for key, value in (label_map or {}).items()}

    def convert(model_output: str, valid_labels: Sequence[str]) -> str:
        labels = {_clean(label): label for label in valid_labels}
        for word in model_output.split():
            word = _clean(word)
            if word in labels:
                return labels[word]
            if word in aliases:
                return aliases[word]
        return UNKNOWN_LABEL

    return convert


class ClassificationAccuracy(GenerationAlgorithm):
    """Per record `classification_accuracy_score` (1 if the read label equals the target); per
    dataset also balanced accuracy, precision and recall (scikit-learn; `multiclass_average`
    for the last two, "micro" by default as in AWS fmeval)."""

    name = "classification_accuracy"
    METRICS = (
        MetricSpec(CLASSIFICATION_ACCURACY_SCORE),
        *(MetricSpec(name, per_record=False) for name in (BALANCED_ACCURACY_SCORE, PRECISION_SCORE, RECALL_SCORE)),
    )

    def __init__(
        self,
        *,
        valid_labels: Sequence[str] | None = None,
        label_map: Mapping[str, str] | None = None,
        converter: Converter | None = None,
        multiclass_average: str = "micro",
        metrics: Sequence[str] | None = None,
    ):
        super().__init__(metrics=metrics)
        if multiclass_average not in AVERAGES:
            raise UserError(f"classification_accuracy: multiclass_average must be one of {AVERAGES}")
        if valid_labels is not None and not valid_labels:
            raise UserError("classification_accuracy: valid_labels must not be empty")
        self.valid_labels = None if valid_labels is None else [str(label) for label in valid_labels]
        self.label_map = dict(label_map or {})
        self.converter = converter or make_label_converter(self.label_map)
        self.multiclass_average = multiclass_average

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "valid_labels": self.valid_labels,
            "label_map": self.label_map,
            "multiclass_average": self.multiclass_average,
        }

    def prepare(self, records: Iterable[Record]) -> None:
        """Without given valid labels, the labels are the distinct targets of the dataset."""
        if self.valid_labels is None:
            self.valid_labels = sorted({record.target_output[0] for record in records if record.target_output})

    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple[dict[str, float], dict]]:
        results = []
        for record, output in zip(records, outputs):
            predicted = self.converter(output, self.valid_labels or [])
            target = record.target_output[0]
            scores = {}
            if CLASSIFICATION_ACCURACY_SCORE in self.metrics:
                scores[CLASSIFICATION_ACCURACY_SCORE] = float(_clean(predicted) == _clean(target))
            results.append((scores, {"classified_model_output": predicted}))
        return results

    def corpus_metrics(self) -> dict[str, CorpusMetric]:
        from sklearn import metrics as sk

        def metric(score: Callable[..., float], **options: Any) -> CorpusMetric:
            def compute(results: Sequence[RecordResult]) -> float:
                y_true = [_clean(r.record.target_output[0]) for r in results]
                y_pred = [_clean(r.extras["classified_model_output"]) for r in results]
                with warnings.catch_warnings():
                    # "unknown" predictions are labels absent from y_true: expected, not worth a warning.
                    warnings.simplefilter("ignore")
                    return float(score(y_true, y_pred, **options))

            return compute

        average = {"average": self.multiclass_average, "zero_division": 0}
        available = {
            BALANCED_ACCURACY_SCORE: metric(sk.balanced_accuracy_score),
            PRECISION_SCORE: metric(sk.precision_score, **average),
            RECALL_SCORE: metric(sk.recall_score, **average),
        }
        return {name: fn for name, fn in available.items() if name in self.metrics}
