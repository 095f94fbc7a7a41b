"""`EvalOutput`: what `summary.json` holds, the result of one evaluation of one model on one dataset."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fmeval.errors import UserError
from fmeval.scores import CategoryScore, EvalScore, MetricSpec

SCHEMA_VERSION = 1
"""Version of the run directory's files (run.json, records.jsonl lines, summary.json)."""


@dataclass
class EvalOutput:
    """The result of one evaluation of one model on one dataset; `summary.json` holds exactly this."""

    eval_name: str
    dataset_name: str
    dataset_scores: list[EvalScore]
    run_id: str | None = None
    category_scores: list[CategoryScore] = field(default_factory=list)
    metrics: list[MetricSpec] = field(default_factory=list)
    """What each metric means (direction, ideal value, range), as the evaluation declared it."""
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
    """Requests, retries, throttling, cache hits and misses, records resumed and retried."""
    error: str | None = None
    schema_version: int = SCHEMA_VERSION

    def score(self, name: str) -> EvalScore:
        """The dataset score called `name`."""
        for score in self.dataset_scores:
            if score.name == name:
                return score
        raise KeyError(f"no dataset score named {name!r}; have {[s.name for s in self.dataset_scores]}")

    def spec(self, name: str) -> MetricSpec:
        """The declared meaning of the metric called `name`."""
        for spec in self.metrics:
            if spec.name == name:
                return spec
        raise KeyError(f"no metric named {name!r}; have {[s.name for s in self.metrics]}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = [spec.to_dict() for spec in self.metrics]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalOutput:
        version = data.get("schema_version")
        if version is None:
            raise UserError("this summary was written by an fmeval older than run schema 1, whose summaries do not "
                            "say what their metrics mean; run the evaluation again")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise UserError(f"this summary has run schema {version!r}; this fmeval reads schema {SCHEMA_VERSION} "
                            "and older: upgrade fmeval")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["dataset_scores"] = [EvalScore(**s) for s in data.get("dataset_scores", [])]
        values["category_scores"] = [
            CategoryScore(name=c["name"], scores=[EvalScore(**s) for s in c["scores"]])
            for c in data.get("category_scores") or []
        ]
        values["metrics"] = [MetricSpec.from_dict(spec) for spec in data.get("metrics", [])]
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        """The summary as JSON text; with `path`, also written there."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> EvalOutput:
        """Parse a JSON string, or read a `summary.json` file or the run directory holding it."""
        if str(text_or_path).lstrip().startswith("{"):
            return cls.from_dict(json.loads(str(text_or_path)))
        path = Path(text_or_path)
        if path.is_dir():
            from fmeval.runs.directory import RunDirectory

            return RunDirectory(path).summary()
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
