"""Monitoring of deployed models: data capture (a runner wrapper and a reverse proxy) and ground
truth merged by event id. Baselines, checks, schedules and alerts come next (issue 10)."""
from __future__ import annotations

from typing import Any


def capture(runner: Any, directory: Any, **options: Any) -> Any:
    """Wrap any model runner so that each generation is captured (see `capture.capture`)."""
    from fmeval.monitoring.capture import capture as wrap

    return wrap(runner, directory, **options)
