"""Length-sorted batching with order restored: the lm-evaluation-harness `Collator` idea."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def length_sorted_batches(items: Sequence[T], batch_size: int, length: Callable[[T], int] = len) -> list[list[int]]:
    """Indices of `items` grouped into batches of similar length, longest first.

    Similar lengths waste little padding; longest first makes an out-of-memory error show
    on the first batch rather than the last. Callers write results back by index, which
    restores the original order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(items)), key=lambda i: -length(items[i]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
