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
    "general_semantic_robustness": (
        "fmeval.algorithms.semantic_robustness",
        "GeneralSemanticRobustness",
        "Output change under prompt perturbations: word_error_rate, bertscore_dissimilarity.",
    ),
    "qa_accuracy_semantic_robustness": (
        "fmeval.algorithms.semantic_robustness",
        "qa_accuracy_semantic_robustness",
        "qa_accuracy on original prompts plus delta_<metric> under perturbations.",
    ),
    "summarization_accuracy_semantic_robustness": (
        "fmeval.algorithms.semantic_robustness",
        "summarization_accuracy_semantic_robustness",
        "summarization_accuracy plus delta_<metric> under perturbations.",
    ),
    "classification_accuracy_semantic_robustness": (
        "fmeval.algorithms.semantic_robustness",
        "classification_accuracy_semantic_robustness",
        "classification_accuracy plus delta_classification_accuracy_score under perturbations.",
    ),
    "toxicity": (
        "fmeval.algorithms.toxicity",
        "Toxicity",
        "Toxicity of open-ended generations: Detoxify's 7 scores, or ToxiGen's toxicity.",
    ),
    "qa_toxicity": ("fmeval.algorithms.toxicity", "QAToxicity", "Toxicity of answers on QA datasets."),
    "summarization_toxicity": (
        "fmeval.algorithms.toxicity",
        "SummarizationToxicity",
        "Toxicity of summaries on summarization datasets.",
    ),
    "model_graded": (
        "fmeval.algorithms.model_graded",
        "ModelGraded",
        "A judge model grades outputs (--judge-model): correctness, helpfulness, harmlessness, faithfulness, "
        "pairwise, or your own template.",
    ),
    "prompt_stereotyping": (
        "fmeval.algorithms.prompt_stereotyping",
        "PromptStereotyping",
        "Log-probability preference for more-stereotypical sentences (CrowS-Pairs): prompt_stereotyping, 0.5 ideal.",
    ),
    "multiple_choice": (
        "fmeval.algorithms.multiple_choice",
        "MultipleChoice",
        "Choices scored by log-likelihood after the prompt (lm-eval's multiple_choice): acc, acc_norm, acc_bytes, mc2.",
    ),
    "perplexity": (
        "fmeval.algorithms.perplexity",
        "Perplexity",
        "Rolling-window log-likelihood of whole texts (lm-eval's loglikelihood_rolling): word_perplexity, "
        "byte_perplexity, bits_per_byte.",
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
