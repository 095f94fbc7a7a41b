"""Evaluation algorithms, by name; the registries of evaluations and metrics.

An evaluation is named by a built-in name, a name registered with `@register_evaluation`
(or `@register_metric`, which makes a one-metric evaluation), or a `package.module:attribute`
spec naming an `Algorithm` subclass, a function that returns one, or a registered metric.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, TypeVar

from fmeval.errors import UserError
from fmeval.plugins import import_spec, is_module_spec, load_plugins

T = TypeVar("T")

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


def takes_option(name: str, option: str) -> bool | None:
    """Whether the evaluation called `name` takes the keyword option `option` (itself, or the
    evaluation it builds on and passes other options to); None when that cannot be told."""
    module_name, class_name, _ = EVALUATIONS[name]
    factory = getattr(importlib.import_module(module_name), class_name)
    parameters = inspect.signature(factory).parameters
    if option in parameters:
        return True
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return False
    base = getattr(factory, "base_evaluation", None)
    return takes_option(base, option) if base in EVALUATIONS else None


REGISTERED: dict[str, tuple[Callable[..., Any], str]] = {}
"""Evaluations registered by `@register_evaluation` and `@register_metric`: name -> (factory, description)."""
METRICS: dict[str, Any] = {}
"""Metrics registered by `@register_metric`: name -> `fmeval.algorithms.metric.Metric`."""


def register_evaluation(name: str, *, description: str = "") -> Callable[[T], T]:
    """Make an `Algorithm` subclass (or a function that returns an Algorithm) an evaluation that
    the CLI, YAML and `RunConfig` can name: `@register_evaluation("my_eval")`."""
    _check_name(name, "evaluation")

    def register(factory: T) -> T:
        if not callable(factory):
            raise TypeError(f"register_evaluation({name!r}) decorates a class or a function, got {factory!r}")
        summary = description or (inspect.getdoc(factory) or "").split("\n")[0]
        REGISTERED[name] = (factory, summary)  # type: ignore[assignment]
        return factory

    return register


def register_metric(name: str, *, higher_is_better: bool | None, ideal: float | None = None,
                    range: tuple[float, float] = (0.0, 1.0), description: str = "") -> Callable[[T], T]:
    """Make `fn(model_output: str, target_output: list[str]) -> float` a metric, and an
    evaluation of that one metric called `name`. `higher_is_better` says which way is better
    (None with an `ideal` value for metrics judged by their distance to it): reports and
    `fmeval compare` read it."""
    _check_name(name, "metric")
    from fmeval.scores import MetricSpec

    spec = MetricSpec(name, higher_is_better=higher_is_better, ideal=ideal, range=range)

    def register(fn: T) -> T:
        from fmeval.algorithms.metric import Metric, metric_evaluation

        if inspect.isclass(fn) or not callable(fn):
            raise TypeError(f"register_metric({name!r}) decorates a function (model_output, target_output), "
                            f"got {fn!r}")
        METRICS[name] = Metric(spec, fn)  # type: ignore[arg-type]
        summary = description or (inspect.getdoc(fn) or "").split("\n")[0] or f"the metric {name}"
        REGISTERED[name] = (lambda **options: metric_evaluation([name], **options), summary)
        return fn

    return register


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not name or ":" in name:
        raise TypeError(f"a {what} name must be a non-empty string without ':', got {name!r}")
    if name in EVALUATIONS:
        raise ValueError(f"{name!r} is a built-in evaluation; choose another name")


def evaluation_names() -> dict[str, str]:
    """Every evaluation that can be named, with its one-line description (plugins included)."""
    load_plugins()
    return {**{name: description for name, (_, _, description) in EVALUATIONS.items()},
            **{name: description for name, (_, description) in REGISTERED.items()}}


def get_algorithm(name: str, **options: Any):
    """The evaluation called `name` (see the module docstring), built with `options` (keyword
    arguments of its class)."""
    from fmeval.algorithms.base import Algorithm

    factory = _factory(name)
    try:
        algorithm = factory(**options)
    except TypeError as exc:
        raise UserError(f"{name}: bad option: {exc}") from exc
    if not isinstance(algorithm, Algorithm):
        raise UserError(f"evaluation {name!r} built {type(algorithm).__name__}, not an Algorithm (subclass "
                        f"fmeval.GenerationAlgorithm or fmeval.Algorithm)")
    return algorithm


def _factory(name: str) -> Callable[..., Any]:
    from fmeval.algorithms.base import Algorithm

    if name in EVALUATIONS:
        module_name, class_name, _ = EVALUATIONS[name]
        return getattr(importlib.import_module(module_name), class_name)
    if name not in REGISTERED and not is_module_spec(name):
        load_plugins()
    if name in REGISTERED:
        return REGISTERED[name][0]
    if not is_module_spec(name):
        raise UserError(f"unknown evaluation {name!r}; available: {', '.join(evaluation_names())}; or name your "
                        f"own as package.module:Class")
    value = import_spec(name, what="evaluation")
    metric = next((key for key, registered in METRICS.items() if registered.fn is value), None)
    if metric is not None:
        return REGISTERED[metric][0]
    if inspect.isclass(value) and not issubclass(value, Algorithm):
        raise UserError(f"evaluation {name!r} is the class {value.__name__}, not an Algorithm subclass (subclass "
                        f"fmeval.GenerationAlgorithm or fmeval.Algorithm)")
    if not callable(value):
        raise UserError(f"evaluation {name!r} is not a class or a function, but {type(value).__name__}")
    return value
