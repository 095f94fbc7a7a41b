"""Result containers: `EvalScore`, `CategoryScore` and `EvalOutput`, all JSON round-trippable."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EvalScore:
    """One aggregate score. `ci_lower`/`ci_upper` bound a 95% bootstrap confidence interval."""

    name: str
    value: float | None
    error: str | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    count: int | None = None
    """How many records the value is computed from (records with errors are left out)."""


@dataclass(frozen=True)
class CategoryScore:
    """The scores of the records of one category (e.g. one CrowS-Pairs bias type)."""

    name: str
    scores: list[EvalScore]


@dataclass
class EvalOutput:
    """The result of one evaluation of one model on one dataset; `summary.json` holds exactly this."""

    eval_name: str
    dataset_name: str
    dataset_scores: list[EvalScore]
    run_id: str | None = None
    category_scores: list[CategoryScore] = field(default_factory=list)
    prompt_template: str | None = None
    output_path: str | None = None
    num_records: int = 0
    num_errors: int = 0
    num_skipped_records: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    fmeval_version: str | None = None
    created_at: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    """Requests, retries, throttling, cache hits and misses, records resumed."""
    error: str | None = None

    def score(self, name: str) -> EvalScore:
        """The dataset score called `name`."""
        for score in self.dataset_scores:
            if score.name == name:
                return score
        raise KeyError(f"no dataset score named {name!r}; have {[s.name for s in self.dataset_scores]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalOutput:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["dataset_scores"] = [EvalScore(**s) for s in data.get("dataset_scores", [])]
        values["category_scores"] = [
            CategoryScore(name=c["name"], scores=[EvalScore(**s) for s in c["scores"]])
            for c in data.get("category_scores") or []
        ]
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> EvalOutput:
        """Parse a JSON string, or read a `summary.json` file (or the run directory holding it)."""
        candidate = Path(text_or_path) if not str(text_or_path).lstrip().startswith("{") else None
        if candidate is not None:
            if candidate.is_dir():
                candidate = candidate / "summary.json"
            return cls.from_dict(json.loads(candidate.read_text(encoding="utf-8")))
        return cls.from_dict(json.loads(str(text_or_path)))
