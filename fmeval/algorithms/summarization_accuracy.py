"""Summarization accuracy: ROUGE, METEOR and BERTScore against the reference summaries."""
from __future__ import annotations

import functools
import re
from typing import Any, Sequence

from fmeval.algorithms.base import GenerationAlgorithm, max_over_targets
from fmeval.algorithms.bertscore import BERTSCORE_RANGE, DEFAULT_MODEL, BertScore
from fmeval.datasets.record import Record
from fmeval.errors import UserError
from fmeval.scores import MetricSpec

ROUGE = "rouge"
METEOR = "meteor"
BERTSCORE = "bertscore"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ERR_WORDNET = (
    "METEOR needs NLTK's WordNet corpus, which is not installed: run `scripts/install_wordnet.sh "
    "$VIRTUAL_ENV/nltk_data` (offline, from Debian's wordnet packages) or `python -m nltk.downloader wordnet`, "
    "or leave 'meteor' out of metrics"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@functools.lru_cache(maxsize=8)
def _rouge_scorer(rouge_type: str, use_stemmer: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([rouge_type], use_stemmer=use_stemmer)


@functools.lru_cache(maxsize=1)
def _word_tokenizer() -> Any:
    from nltk.corpus import wordnet
    from nltk.tokenize import NLTKWordTokenizer

    try:
        wordnet.ensure_loaded()
    except LookupError as exc:
        raise UserError(ERR_WORDNET) from exc
    return NLTKWordTokenizer()


def _tokenize(text: str) -> list[str]:
    # nltk.word_tokenize = Punkt sentence split + this tokenizer; Punkt's model needs a download,
    # so sentences are split at . ! ? followed by whitespace instead.
    tokenizer = _word_tokenizer()
    return [token for sentence in _SENTENCE_END.split(text) for token in tokenizer.tokenize(sentence)]


def rouge_score(model_output: str, target: str, *, rouge_type: str = "rouge2", use_stemmer: bool = True) -> float:
    """ROUGE F-measure, as the `rouge-score` package computes it (what HF evaluate's rouge wraps)."""
    return _rouge_scorer(rouge_type, use_stemmer).score(target, model_output)[rouge_type].fmeasure


def meteor_score(model_output: str, target: str) -> float:
    """NLTK's METEOR of one hypothesis against one reference."""
    from nltk.translate.meteor_score import single_meteor_score

    return float(single_meteor_score(_tokenize(target), _tokenize(model_output)))


class SummarizationAccuracy(GenerationAlgorithm):
    """ROUGE (type configurable, rouge2 by default, with the Porter stemmer), METEOR and BERTScore;
    each the best over a record's targets."""

    name = "summarization_accuracy"
    METRICS = (MetricSpec(ROUGE), MetricSpec(METEOR), MetricSpec(BERTSCORE, range=BERTSCORE_RANGE))

    def __init__(
        self,
        *,
        metrics: Sequence[str] | None = None,
        rouge_type: str = "rouge2",
        use_stemmer: bool = True,
        bertscore_model: str = DEFAULT_MODEL,
        bertscore_num_layers: int | None = None,
    ):
        super().__init__(metrics=metrics)
        if rouge_type not in ROUGE_TYPES:
            raise UserError(f"summarization_accuracy: rouge_type must be one of {ROUGE_TYPES}, got {rouge_type!r}")
        self.rouge_type, self.use_stemmer = rouge_type, use_stemmer
        self.bertscore = BertScore(model=bertscore_model, num_layers=bertscore_num_layers)

    def config(self) -> dict[str, Any]:
        extra = self.bertscore.config() if BERTSCORE in self.metrics else {}
        return {**super().config(), "rouge_type": self.rouge_type, "use_stemmer": self.use_stemmer, **extra}

    def load(self) -> None:
        if METEOR in self.metrics:
            _word_tokenizer()  # WordNet must be installed
        if BERTSCORE in self.metrics:
            self.bertscore.load()

    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple[dict[str, float], dict]]:
        def rouge(output: str, target: str) -> float:
            return rouge_score(output, target, rouge_type=self.rouge_type, use_stemmer=self.use_stemmer)

        functions = {ROUGE: rouge, METEOR: meteor_score}
        scores = [
            {name: max_over_targets(functions[name], output, record.target_output) for name in self.metrics if name in functions}
            for record, output in zip(records, outputs)
        ]
        if BERTSCORE in self.metrics:
            best = self.bertscore.max_over_targets(outputs, [record.target_output for record in records])
            for record_scores, value in zip(scores, best):
                record_scores[BERTSCORE] = value
        return [(record_scores, {}) for record_scores in scores]
