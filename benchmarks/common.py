"""What the benchmarks share: the converted default model, alternating timed rounds, the result line."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable


def converted_smollm2() -> Path:
    """The bundled SmolLM2, converted from GGUF once (untimed), as a model directory."""
    from fmeval.model_runners.default import smollm2_gguf_path
    from fmeval.model_runners.huggingface import _convert_gguf

    gguf = smollm2_gguf_path()
    return _convert_gguf(gguf.parent, gguf.name)


def alternate(rounds: int, ours: Callable[[], Any], reference: Callable[[Any], Any]) -> tuple[list[float], list[float], Any, Any]:
    """Time `ours()` then `reference(ours' result)`, `rounds` times, alternating so that load on a
    shared machine hits both alike. Returns both lists of seconds and the last results."""
    ours_s, reference_s = [], []
    ours_result = reference_result = None
    for _ in range(rounds):
        started = time.perf_counter()
        ours_result = ours()
        ours_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        reference_result = reference(ours_result)
        reference_s.append(time.perf_counter() - started)
    print(f"rounds: ours {[round(t, 2) for t in ours_s]} s, reference {[round(t, 2) for t in reference_s]} s")
    return ours_s, reference_s, ours_result, reference_result


def result_line(name: str, ours_s: float, reference_s: float, **extra: Any) -> None:
    """The benchmark's last line: one JSON object (extra fields, e.g. cache_hits, after the ratio)."""
    print(json.dumps({"name": name, "ours_s": round(ours_s, 3), "reference_s": round(reference_s, 3),
                      "ratio": round(ours_s / reference_s, 3), **extra}))


def cache_hits(run_dir: Path) -> int:
    """Answers a run took from a cache instead of the model: a benchmark of real work needs 0."""
    return json.loads((run_dir / "summary.json").read_text())["engine"]["cache_hits"]
