"""Text-matching metrics with AWS fmeval's formulas (themselves from HELM and SQuAD/QuAC).

All take one model output and one target; evaluations take the max over a record's targets.

Two normalisations (`normalization=`):
- "aws" (default): exactly AWS fmeval 1.2.3's `normalize_text_quac_protocol`, so that numbers
  compare: lowercase, drop ASCII punctuation, split on *plain spaces* only, drop a/an/the and
  empty pieces, join with spaces. Word sets for F1, precision and recall then split on all
  whitespace. So "London\\n\\nThe capital" keeps "the" (it is glued to "london\\n\\n"), and a
  non-breaking space does not separate words.
- "squad": the official SQuAD normalisation: the same, but articles are removed wherever they
  stand as words and every kind of whitespace separates words.
"""
from __future__ import annotations

import re
import string
from typing import Callable, Literal

Normalization = Literal["aws", "squad"]
NORMALIZATIONS: tuple[str, ...] = ("aws", "squad")
ARTICLES = frozenset({"a", "an", "the"})
_ARTICLE_WORDS = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_aws(text: str) -> str:
    """AWS fmeval 1.2.3's QuAC normalisation (eval_algorithms/util.py, normalize_text_quac_protocol)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(word for word in text.split(" ") if word and word not in ARTICLES)


def normalize_squad(text: str) -> str:
    """SQuAD's normalize_answer: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLE_WORDS.sub(" ", text).split())


def normalizer(normalization: Normalization) -> Callable[[str], str]:
    """The normalising function of a strategy; AWS's strips surrounding whitespace first, as AWS does."""
    if normalization == "aws":
        return lambda text: normalize_aws(text.strip())
    if normalization == "squad":
        return normalize_squad
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def factual_inclusion(model_output: str, target: str) -> float:
    """1 if the target occurs in the output, ignoring case (`factual_knowledge`)."""
    return float(target.lower() in model_output.lower())


def factual_inclusion_quasi_exact(model_output: str, target: str, *, normalization: Normalization = "aws") -> float:
    """1 if the normalised target occurs in the normalised output (`factual_knowledge_quasi_exact`)."""
    normalize = normalizer(normalization)
    return float(normalize(target) in normalize(model_output))


def exact_match(model_output: str, target: str) -> float:
    """1 if output and target are equal once surrounding whitespace is stripped."""
    return float(model_output.strip() == target.strip())


def quasi_exact_match(model_output: str, target: str, *, normalization: Normalization = "aws") -> float:
    """1 if output and target are equal after normalisation."""
    normalize = normalizer(normalization)
    return float(normalize(model_output) == normalize(target))


def _word_sets(model_output: str, target: str, normalization: Normalization) -> tuple[set[str], set[str]]:
    # AWS fmeval compares *sets* of normalised words (nltk.metrics.scores), so repeats count once.
    normalize = normalizer(normalization)
    return set(normalize(model_output).split()), set(normalize(target).split())


def precision_over_words(model_output: str, target: str, *, normalization: Normalization = "aws") -> float:
    """Share of the output's distinct normalised words that are in the target; 0 for an empty output."""
    output_words, target_words = _word_sets(model_output, target, normalization)
    return len(output_words & target_words) / len(output_words) if output_words else 0.0


def recall_over_words(model_output: str, target: str, *, normalization: Normalization = "aws") -> float:
    """Share of the target's distinct normalised words that are in the output; 0 for an empty target."""
    output_words, target_words = _word_sets(model_output, target, normalization)
    return len(output_words & target_words) / len(target_words) if target_words else 0.0


def f1_over_words(model_output: str, target: str, *, normalization: Normalization = "aws") -> float:
    """Harmonic mean of precision and recall over words; 0 when either is 0."""
    precision = precision_over_words(model_output, target, normalization=normalization)
    recall = recall_over_words(model_output, target, normalization=normalization)
    if precision == 0 or recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / words in the reference, over whitespace-split
    words (what HF evaluate's `wer` computes for one pair). An empty reference gives 0 when the
    hypothesis is empty too, else 1."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1] / len(ref)
