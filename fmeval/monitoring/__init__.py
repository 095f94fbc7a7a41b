"""Monitoring of deployed models: data capture (a runner wrapper and a reverse proxy), ground
truth merged by event id, baselines and checks of five kinds (`monitors`), schedules with
alarms (`schedules`, `alerts`), and reports (`report`)."""
from __future__ import annotations

from typing import Any

# The monitor kinds and what each checks (here, light, for the CLI's help; `monitors.KINDS` runs them).
MONITOR_KINDS = {
    "data-quality": "statistics and constraints of the inputs (or outputs), and drift per column",
    "model-quality": "metrics of the predictions against ground truth, with bootstrap CIs",
    "bias-drift": "pre- and post-training bias metrics against ranges",
    "attribution-drift": "SHAP global attributions against the baseline's ranking (NDCG)",
    "llm-outputs": "toxicity, refusals, lengths, languages and reference metrics of an LLM's traffic",
}


def capture(runner: Any, directory: Any, **options: Any) -> Any:
    """Wrap any model runner so that each generation is captured (see `data_capture.capture`)."""
    from fmeval.monitoring.data_capture import capture as wrap

    return wrap(runner, directory, **options)
