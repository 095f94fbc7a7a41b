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

from fmeval.errors import UserError

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
    """When a failed call is sent again, and after how long: the one policy of the engine's
    concurrent requests, its batch calls, the Ray workers and the webhook posters.

    Only what may pass is retried: a `RetryableError`, or an error a runner's `should_retry`
    accepts; anything else (a `TypeError`, a 400) is final at once. Attempt k waits
    `base_delay_s * 2**k`, at most `max_delay_s`, of which the `jitter` share is random; a
    service's Retry-After replaces the random share."""

    max_retries: int = 5
    """Retries after the first attempt; 0 sends once."""
    base_delay_s: float = 0.25
    """The first backoff window; each retry doubles it."""
    max_delay_s: float = 30.0
    """No wait is longer."""
    jitter: float = 1.0
    """The random share of each window: 1 waits uniform(0, window) (full jitter), 0.5 waits half
    the window plus uniform(0, half)."""
    give_up_beyond_cap: bool = False
    """A Retry-After longer than `max_delay_s` ends the tries (True), or is cut to it (False)."""

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("max_retries and delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        window = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        fixed = window * (1 - self.jitter)
        if retry_after is not None:
            return min(max(retry_after, fixed, 0.0), self.max_delay_s)
        return fixed + rng.uniform(0, window * self.jitter)

    def wait_before_retry(self, attempt: int, exc: BaseException, rng: random.Random, *,
                          should_retry: Callable[[BaseException], bool] | None = None) -> float | None:
        """Seconds to wait before sending again after attempt `attempt` (from 0) failed with
        `exc`; None when it must not be sent again."""
        if attempt >= self.max_retries or not is_transient(exc, should_retry):
            return None
        retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
        if retry_after is not None and self.give_up_beyond_cap and retry_after > self.max_delay_s:
            return None
        return self.delay(attempt, retry_after, rng)

    def call(self, send: Callable[[], T], *, rng: random.Random, stats: RequestStats | None = None,
             should_retry: Callable[[BaseException], bool] | None = None,
             sleep: Callable[[float], object] = time.sleep) -> T:
        """`send()` until it returns, or raise its last error (a final one at once)."""
        attempt = 0
        while True:
            if stats is not None:
                stats.requests += 1
            try:
                return send()
            except Exception as exc:
                wait = self.wait_before_retry(attempt, exc, rng, should_retry=should_retry)
                if stats is not None and isinstance(exc, RetryableError):
                    stats.throttled += int(exc.throttled)
                if wait is None:
                    raise
            if stats is not None:
                stats.retries += 1
            attempt += 1
            sleep(wait)


def is_transient(exc: BaseException, should_retry: Callable[[BaseException], bool] | None = None) -> bool:
    """Whether sending again may help: a `RetryableError`, or what `should_retry` accepts; never
    a `UserError` (the user asked for what cannot be given)."""
    if isinstance(exc, UserError):
        return False
    return isinstance(exc, RetryableError) or (should_retry is not None and bool(should_retry(exc)))


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
    should_retry: Callable[[BaseException], bool] | None = None,
    seed: int = 0,
) -> list[T | BaseException]:
    """Run every request concurrently under the limiter; each result is a value or the final exception.
    `on_result(index, result)` is awaited as each request finishes (e.g. to save it at once), while
    the request still holds its slot. `should_retry` names further transient errors (see `RetryPolicy`)."""
    rng = random.Random(seed)
    stats = stats if stats is not None else RequestStats()

    async def settle(index: int) -> T | BaseException:
        attempt = 0
        while True:
            await limiter.acquire()
            throttled = False
            wait: float | None = None
            try:
                try:
                    if rate is not None:
                        await rate.wait(costs[index] if costs else 1)
                    stats.requests += 1
                    result: T | BaseException = await requests[index]()
                except Exception as exc:
                    throttled = isinstance(exc, RetryableError) and exc.throttled
                    stats.throttled += int(throttled)
                    wait = retry.wait_before_retry(attempt, exc, rng, should_retry=should_retry)
                    if wait is None:
                        stats.failed += 1
                    result = exc
                if wait is None:
                    # The slot is held until the answer is saved: a process killed now has lost
                    # at most the requests in flight.
                    if on_result is not None:
                        await on_result(index, result)
                    return result
            finally:
                await limiter.release(throttled=throttled)
            stats.retries += 1
            attempt += 1
            await asyncio.sleep(wait)

    return list(await asyncio.gather(*(settle(i) for i in range(len(requests)))))
