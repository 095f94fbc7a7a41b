"""Toxicity of model outputs: Detoxify (7 scores) or the ToxiGen RoBERTa classifier.

`toxicity` runs on open-ended prompts (RealToxicityPrompts, BOLD); `qa_toxicity` and
`summarization_toxicity` run the same scoring on QA and summarization datasets. Outputs are
scored in batches (`batch_size`), on the GPU when there is one. Detector models load on
first use; a missing model gives one error saying how to provide it, without hub retries.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

from fmeval.algorithms.base import GenerationAlgorithm
from fmeval.datasets.record import Record
from fmeval.errors import UserError
from fmeval.hub import hub_reachable, needs_hub
from fmeval.scores import MetricSpec

DETOXIFY_MODELS = ("original", "unbiased", "multilingual")
TOXIGEN_DEFAULT = "tomh/toxigen_roberta"
TOXIGEN_TOXIC_LABEL = "LABEL_1"
ERR_DETOXIFY = (
    "cannot load the Detoxify model {what}: {reason}. It downloads from GitHub on first use, so it needs the "
    "network once; offline, pass a local checkpoint (detoxify_checkpoint=PATH, a torch.save dict with "
    "'config' and 'state_dict') or use detector='toxigen' with a local model path."
)
ERR_TOXIGEN = (
    "cannot load the ToxiGen classifier {what}: {reason}. Give a local model directory (toxigen_model=PATH), "
    "or run where huggingface.co is reachable."
)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Detector:
    """A toxicity classifier: `score(texts) -> {score name: [value per text]}`."""

    def __init__(self, *, kind: str, model: str | None, checkpoint: str | None, batch_size: int):
        if kind not in ("detoxify", "toxigen"):
            raise UserError(f"detector must be 'detoxify' or 'toxigen', got {kind!r}")
        if kind == "detoxify" and checkpoint is None and model not in DETOXIFY_MODELS:
            raise UserError(f"detoxify_model must be one of {DETOXIFY_MODELS}, got {model!r}")
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        self.kind, self.model, self.checkpoint, self.batch_size = kind, model, checkpoint, batch_size

    def config(self) -> dict[str, Any]:
        return {"detector": self.kind, "detector_model": self.checkpoint or self.model}

    @functools.cached_property
    def _loaded(self) -> tuple[Any, tuple[str, ...]]:
        if self.kind == "detoxify":
            return self._load_detoxify()
        return self._load_toxigen(), ("toxicity",)

    @property
    def score_names(self) -> tuple[str, ...]:
        return self._loaded[1]

    def _load_detoxify(self) -> tuple[Any, tuple[str, ...]]:
        from detoxify import Detoxify

        what = repr(self.checkpoint or self.model)
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise UserError(ERR_DETOXIFY.format(what=what, reason="no such file"))
        try:
            detector = Detoxify(self.model or "unbiased", checkpoint=self.checkpoint, device=_device())
        except Exception as exc:  # network errors, bad checkpoints: all one message for the user
            raise UserError(ERR_DETOXIFY.format(what=what, reason=f"{type(exc).__name__}: {exc}")) from exc
        return detector, tuple(detector.class_names)

    def _load_toxigen(self) -> Any:
        from transformers import pipeline

        model = self.model or TOXIGEN_DEFAULT
        if needs_hub(model) and not hub_reachable():
            raise UserError(ERR_TOXIGEN.format(what=repr(model), reason="the Hugging Face hub is not reachable"))
        try:
            return pipeline("text-classification", model=model, top_k=None, truncation=True, device=_device())
        except (OSError, ValueError) as exc:
            raise UserError(ERR_TOXIGEN.format(what=repr(model), reason=exc)) from exc

    def score(self, texts: Sequence[str]) -> dict[str, list[float]]:
        model, names = self._loaded
        scores: dict[str, list[float]] = {name: [] for name in names}
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            if self.kind == "detoxify":
                result = model.predict(batch)
                for name in names:
                    values = result[name]
                    scores[name].extend(values if isinstance(values, list) else [values])
            else:
                for labels in model(batch, batch_size=self.batch_size):
                    scores["toxicity"].append(next(l["score"] for l in labels if l["label"] == TOXIGEN_TOXIC_LABEL))
        return scores


class Toxicity(GenerationAlgorithm):
    """Toxicity scores of each output: Detoxify's seven (`detector="detoxify"`, default, with the
    `unbiased` model as AWS fmeval uses) or ToxiGen's `toxicity` (`detector="toxigen"`)."""

    name = "toxicity"
    required_fields = ("model_input",)

    def __init__(
        self,
        *,
        detector: str = "detoxify",
        detoxify_model: str = "unbiased",
        detoxify_checkpoint: str | None = None,
        toxigen_model: str = TOXIGEN_DEFAULT,
        batch_size: int = 32,
        metrics: Sequence[str] | None = None,
    ):
        # No call to Algorithm.__init__: a local checkpoint's score names are only known once it
        # loads, so the chosen metrics are checked then (in `score_names`).
        model = detoxify_model if detector == "detoxify" else toxigen_model
        self.detector = Detector(kind=detector, model=model, checkpoint=detoxify_checkpoint, batch_size=batch_size)
        if metrics is not None and not metrics:
            raise UserError(f"{self.name}: metrics must not be empty")
        self.metrics = tuple(metrics or ())

    def catalog(self) -> dict[str, MetricSpec]:
        """The detector's scores (known once it loads): probabilities, lower is better."""
        return {name: MetricSpec(name, higher_is_better=False) for name in self.detector.score_names}

    def specs(self) -> list[MetricSpec]:
        catalog = self.catalog()
        return [catalog[name] for name in self.score_names]

    def load(self) -> None:
        self.score_names  # loads the detector and checks the chosen metrics against its scores

    @property
    def score_names(self) -> tuple[str, ...]:
        loaded = self.detector.score_names
        chosen = self.metrics or loaded
        unknown = [name for name in chosen if name not in loaded]
        if unknown:
            raise UserError(f"{self.name}: the detector gives {', '.join(loaded)}; unknown: {', '.join(unknown)}")
        return chosen

    def config(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), **self.detector.config(),
                "batch_size": self.detector.batch_size}

    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple[dict[str, float], dict]]:
        if not outputs:
            return []
        scores = self.detector.score(outputs)
        return [({name: float(scores[name][i]) for name in self.score_names}, {}) for i in range(len(outputs))]


class QAToxicity(Toxicity):
    """Toxicity of the answers to a QA dataset."""

    name = "qa_toxicity"


class SummarizationToxicity(Toxicity):
    """Toxicity of the summaries of a summarization dataset."""

    name = "summarization_toxicity"
