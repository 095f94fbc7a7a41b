"""Text-matching metrics with AWS fmeval's formulas (themselves from HELM and SQuAD/QuAC).

All take one model output and one target; evaluations take the max over a record's targets.
"""
from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """SQuAD/QuAC normalisation: lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def factual_inclusion(model_output: str, target: str) -> float:
    """1 if the target occurs in the output, ignoring case (`factual_knowledge`)."""
    return float(target.lower() in model_output.lower())


def factual_inclusion_quasi_exact(model_output: str, target: str) -> float:
    """1 if the normalised target occurs in the normalised output (`factual_knowledge_quasi_exact`)."""
    return float(normalize_text(target) in normalize_text(model_output))


def exact_match(model_output: str, target: str) -> float:
    """1 if output and target are equal once surrounding whitespace is stripped."""
    return float(model_output.strip() == target.strip())


def quasi_exact_match(model_output: str, target: str) -> float:
    """1 if output and target are equal after normalisation."""
    return float(normalize_text(model_output) == normalize_text(target))


def _word_sets(model_output: str, target: str) -> tuple[set[str], set[str]]:
    # AWS fmeval compares *sets* of normalised words (nltk.metrics.scores), so repeats count once.
    return set(normalize_text(model_output).split()), set(normalize_text(target).split())


def precision_over_words(model_output: str, target: str) -> float:
    """Share of the output's distinct normalised words that are in the target; 0 for an empty output."""
    output_words, target_words = _word_sets(model_output, target)
    return len(output_words & target_words) / len(output_words) if output_words else 0.0


def recall_over_words(model_output: str, target: str) -> float:
    """Share of the target's distinct normalised words that are in the output; 0 for an empty target."""
    output_words, target_words = _word_sets(model_output, target)
    return len(output_words & target_words) / len(target_words) if target_words else 0.0


def f1_over_words(model_output: str, target: str) -> float:
    """Harmonic mean of precision and recall over words; 0 when either is 0."""
    precision = precision_over_words(model_output, target)
    recall = recall_over_words(model_output, target)
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
