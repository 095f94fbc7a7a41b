"""Evaluation algorithms, by name."""
from __future__ import annotations

import importlib
from typing import Any

from fmeval.errors import UserError

# name -> (module, class, one-line description); modules import lazily.
EVALUATIONS: dict[str, tuple[str, str, str]] = {
    "factual_knowledge": (
        "fmeval.algorithms.factual_knowledge",
        "FactualKnowledge",
        "Does the output contain the expected fact? factual_knowledge, factual_knowledge_quasi_exact.",
    ),
    "qa_accuracy": (
        "fmeval.algorithms.qa_accuracy",
        "QAAccuracy",
        "Short-answer QA: f1_score, exact_match_score, quasi_exact_match_score, precision/recall_over_words, bertscore.",
    ),
    "summarization_accuracy": (
        "fmeval.algorithms.summarization_accuracy",
        "SummarizationAccuracy",
        "Summaries against references: rouge (rouge2 by default), meteor, bertscore.",
    ),
    "classification_accuracy": (
        "fmeval.algorithms.classification_accuracy",
        "ClassificationAccuracy",
        "Labels read from outputs: classification_accuracy_score, balanced_accuracy_score, precision_score, recall_score.",
    ),
}


def get_algorithm(name: str, **options: Any):
    """The evaluation called `name`, built with `options` (keyword arguments of its class)."""
    try:
        module_name, class_name, _ = EVALUATIONS[name]
    except KeyError:
        raise UserError(f"unknown evaluation {name!r}; available: {', '.join(EVALUATIONS)}") from None
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise UserError(f"{name}: bad option: {exc}") from exc
