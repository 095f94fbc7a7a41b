"""Concurrent requests with an adaptive limit, an optional rate limit, and retries with backoff.

The limit starts at the runner's maximum concurrency, halves when the service throttles
(429 or its equivalent), and grows back by one after each full window of successes (AIMD,
as TCP does). A throttled request waits for `Retry-After` when the service sends one.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence, TypeVar

T = TypeVar("T")


class RetryableError(Exception):
    """A request that may succeed if sent again: throttling, 5xx, timeouts, dropped connections,
    malformed responses. `throttled` marks the service asking us to slow down."""

    def __init__(self, message: str, *, throttled: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.throttled = throttled
        self.retry_after = retry_after


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt k waits uniform(0, min(cap, base * 2**k))."""

    max_retries: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("max_retries and delays must be >= 0")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        return rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds (fractions accepted) or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


class AdaptiveLimiter:
    """At most `limit` requests in flight; `limit` adapts between 1 and `maximum`."""

    def __init__(self, maximum: int):
        if maximum < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {maximum}")
        self.maximum = self.limit = maximum
        self.in_flight = 0
        self.lowest_limit = maximum
        self._successes = 0
        self._completions_since_cut = maximum
        self._condition = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._condition:
            await self._condition.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1

    async def acquire_up_to(self, count: int) -> int:
        """Wait for one slot, then take up to `count` that are free at once: how many were taken."""
        async with self._condition:
            await self._condition.wait_for(lambda: self.in_flight < self.limit)
            taken = min(count, self.limit - self.in_flight)
            self.in_flight += taken
            return taken

    async def abandon(self, count: int = 1) -> None:
        """Free slots without an outcome: their sender died, or it gives back slots it held unused."""
        async with self._condition:
            self.in_flight -= count
            self._wake()

    async def release(self, *, throttled: bool) -> None:
        async with self._condition:
            self.in_flight -= 1
            self._record(throttled=throttled)
            self._wake()

    async def record(self, *, successes: int = 0, throttled: int = 0) -> None:
        """Outcomes of requests whose slots were kept for the next request (the limit still adapts)."""
        async with self._condition:
            for _ in range(throttled):
                self._record(throttled=True)
            for _ in range(successes):
                self._record(throttled=False)
            self._wake()

    def _record(self, *, throttled: bool) -> None:
        self._completions_since_cut += 1
        if throttled:
            # One cut per window: the requests already in flight saw the same overload.
            if self._completions_since_cut >= self.limit:
                self.limit = max(1, self.limit // 2)
                self.lowest_limit = min(self.lowest_limit, self.limit)
                self._completions_since_cut = 0
            self._successes = 0
        else:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self._successes = 0

    def _wake(self) -> None:
        # Wake only as many waiters as there are free slots: with thousands of queued
        # requests, waking all of them on every release costs O(n^2).
        self._condition.notify(max(0, self.limit - self.in_flight))


class RateLimiter:
    """Token buckets for requests per minute and (estimated) tokens per minute; None disables each."""

    def __init__(self, *, requests_per_minute: float | None = None, tokens_per_minute: float | None = None):
        self._buckets = [
            _Bucket(rate / 60.0) if rate else None for rate in (requests_per_minute, tokens_per_minute)
        ]

    async def wait(self, tokens: int) -> None:
        for bucket, cost in zip(self._buckets, (1, tokens)):
            if bucket is not None:
                await bucket.take(cost)


class _Bucket:
    def __init__(self, per_second: float):
        self.per_second = per_second
        self.capacity = max(per_second, 1.0)  # about one second of burst
        self.level = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self, cost: float) -> None:
        cost = min(cost, self.capacity)
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.updated) * self.per_second)
                self.updated = now
                if self.level >= cost:
                    self.level -= cost
                    return
                await asyncio.sleep((cost - self.level) / self.per_second)


@dataclass
class RequestStats:
    """What the requests took: counted by the engine, reported in the run summary."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    failed: int = 0


async def run_with_retries(
    requests: Sequence[Callable[[], Awaitable[T]]],
    *,
    limiter: AdaptiveLimiter,
    retry: RetryPolicy,
    rate: RateLimiter | None = None,
    costs: Sequence[int] | None = None,
    stats: RequestStats | None = None,
    on_result: Callable[[int, T | BaseException], Awaitable[None]] | None = None,
    seed: int = 0,
) -> list[T | BaseException]:
    """Run every request concurrently under the limiter; each result is a value or the final exception.
    `on_result(index, result)` is awaited as each request finishes (e.g. to save it at once)."""
    rng = random.Random(seed)
    stats = stats if stats is not None else RequestStats()

    async def attempt_all(index: int) -> T | BaseException:
        attempt = 0
        while True:
            await limiter.acquire()
            throttled = False
            try:
                if rate is not None:
                    await rate.wait(costs[index] if costs else 1)
                stats.requests += 1
                return await requests[index]()
            except RetryableError as exc:
                throttled = exc.throttled
                stats.throttled += int(throttled)
                if attempt >= retry.max_retries:
                    stats.failed += 1
                    return exc
                wait = retry.delay(attempt, exc.retry_after, rng)
            except Exception as exc:  # not worth retrying (e.g. a 400): recorded at once
                stats.failed += 1
                return exc
            finally:
                await limiter.release(throttled=throttled)
            stats.retries += 1
            attempt += 1
            await asyncio.sleep(wait)

    async def tracked(index: int) -> T | BaseException:
        result = await attempt_all(index)
        if on_result is not None:
            await on_result(index, result)
        return result

    return list(await asyncio.gather(*(tracked(i) for i in range(len(requests)))))
