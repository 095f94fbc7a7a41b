"""Monitoring of deployed models: data capture (a runner wrapper and a reverse proxy), ground
truth merged by event id, and data-quality baselines and checks with drift statistics."""
from __future__ import annotations

from typing import Any


def capture(runner: Any, directory: Any, **options: Any) -> Any:
    """Wrap any model runner so that each generation is captured (see `capture.capture`)."""
    from fmeval.monitoring.capture import capture as wrap

    return wrap(runner, directory, **options)
