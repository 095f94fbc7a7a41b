"""Adaptive limiting, rate limiting and retries, on their own."""
import asyncio
import random
import re
import time

import pytest

from fmeval.retry import (
    AdaptiveLimiter, RateLimiter, RequestStats, RetryableError, RetryPolicy, run_with_retries,
)

def test_retry_policy_backoff_and_retry_after():
    policy = RetryPolicy(max_retries=5, base_delay_s=0.5, max_delay_s=4)
    rng = random.Random(0)
    delays = [policy.delay(attempt, None, rng) for attempt in range(6) for _ in range(200)]
    assert all(0 <= d <= 4 for d in delays)
    assert max(policy.delay(0, None, rng) for _ in range(200)) <= 0.5  # attempt 0 waits at most base
    # Full jitter over a window that doubles with each attempt: uniform(0, base * 2**k), until the cap.
    unbounded = RetryPolicy(max_retries=8, base_delay_s=0.5, max_delay_s=1000)
    for attempt in range(6):
        samples = [unbounded.delay(attempt, None, rng) for _ in range(4000)]
        window = 0.5 * 2**attempt
        assert window * 0.97 <= max(samples) <= window
        assert sum(samples) / len(samples) == pytest.approx(window / 2, rel=0.06)
    assert policy.delay(3, 1.5, rng) == 1.5  # the server's Retry-After wins
    assert policy.delay(3, 60, rng) == 4  # but never beyond the cap

def test_adaptive_limiter_halves_on_throttling_and_grows_back():
    async def scenario():
        limiter = AdaptiveLimiter(8)
        for _ in range(8):
            await limiter.acquire()
        assert limiter.in_flight == 8
        await limiter.release(throttled=True)
        assert limiter.limit == 4  # halved once ...
        for _ in range(3):
            await limiter.release(throttled=True)
        assert limiter.limit == 4  # ... not again for requests that were already in flight
        for _ in range(4):
            await limiter.release(throttled=False)
        assert limiter.limit == 5  # a full window of successes adds one
        return limiter.lowest_limit

    assert asyncio.run(scenario()) == 4

def test_limiter_caps_requests_in_flight():
    peak = 0
    in_flight = 0

    async def request():
        nonlocal peak, in_flight
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "ok"

    async def scenario():
        return await run_with_retries([request] * 40, limiter=AdaptiveLimiter(5), retry=RetryPolicy())

    assert asyncio.run(scenario()) == ["ok"] * 40
    assert peak == 5

def test_rate_limiter_paces_requests():
    async def scenario():
        limiter = RateLimiter(requests_per_minute=600)  # 10 per second, about 1 s of burst
        started = time.monotonic()
        for _ in range(25):
            await limiter.wait(1)
        return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert 1.2 < elapsed < 2.5  # 25 requests at 10/s after a burst of 10

def test_run_with_retries_recovers_gives_up_and_does_not_retry_fatal_errors():
    attempts = {"flaky": 0, "hopeless": 0}

    async def flaky():
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise RetryableError("503", throttled=True)
        return "fine"

    async def hopeless():
        attempts["hopeless"] += 1
        raise RetryableError("always 500")

    async def fatal():
        raise PermissionError("401 unauthorized")

    stats = RequestStats()
    done = []

    async def record(index, result):
        done.append((index, type(result).__name__))

    async def scenario():
        return await run_with_retries(
            [flaky, hopeless, fatal], limiter=AdaptiveLimiter(4),
            retry=RetryPolicy(max_retries=3, base_delay_s=0.001), stats=stats, on_result=record,
        )

    flaky_result, hopeless_result, fatal_result = asyncio.run(scenario())
    assert flaky_result == "fine" and attempts["flaky"] == 3
    assert isinstance(hopeless_result, RetryableError) and attempts["hopeless"] == 4
    assert isinstance(fatal_result, PermissionError)
    assert (stats.requests, stats.retries, stats.throttled, stats.failed) == (3 + 4 + 1, 2 + 3, 2, 2)
    assert sorted(done) == [(0, "str"), (1, "RetryableError"), (2, "PermissionError")]  # each once, as it ended

def test_engine_options_are_validated():
    from fmeval.errors import UserError
    from fmeval.runs.config import build_config

    for bad, message in (({"max_concurrency": 0}, "engine_options.max_concurrency: Input should be greater than or "
                          "equal to 1 (got 0)"), ({"max_retries": -1}, "engine_options.max_retries"),
                         ({"requests_per_minute": 0}, "engine_options.requests_per_minute"),
                         ({"max_retries": 2.5}, "engine_options.max_retries: Input should be a valid integer")):
        with pytest.raises(UserError, match=re.escape(message)):
            build_config(options={"evaluation": "qa_accuracy", "dataset": "trex", "engine_options": bad})


def test_a_slot_is_held_until_the_answer_is_saved():
    """A process killed at any moment must have lost at most the requests in flight: the slot of
    a finished request stays taken while its answer is being saved (it was freed first, and a
    SIGKILL once cost 2,128 requests for 2,000 prompts)."""
    sent = saved = 0
    unsaved_peak = 0

    async def request():
        nonlocal sent, unsaved_peak
        sent += 1
        unsaved_peak = max(unsaved_peak, sent - saved)
        await asyncio.sleep(0)
        return "ok"

    async def save(index, result):
        nonlocal saved
        await asyncio.sleep(0.002)  # a slow disk
        saved += 1

    async def scenario():
        return await run_with_retries([request] * 30, limiter=AdaptiveLimiter(3), retry=RetryPolicy(),
                                      on_result=save)

    assert asyncio.run(scenario()) == ["ok"] * 30
    assert saved == 30 and unsaved_peak == 3


def test_one_policy_decides_what_is_retried_and_how_long_it_waits():
    rng = random.Random(0)
    policy = RetryPolicy(max_retries=2, base_delay_s=1.0, max_delay_s=8.0)
    assert policy.wait_before_retry(0, TypeError("bug"), rng) is None  # final at once
    assert policy.wait_before_retry(0, TypeError("bug"), rng, should_retry=lambda e: True) is not None
    assert 0 <= policy.wait_before_retry(1, RetryableError("503"), rng) <= 2.0
    assert policy.wait_before_retry(2, RetryableError("503"), rng) is None  # out of retries
    # The webhook posters' shape: half of each window fixed, and a Retry-After beyond the cap gives up.
    webhook = RetryPolicy(max_retries=4, base_delay_s=1.0, max_delay_s=10.0, jitter=0.5, give_up_beyond_cap=True)
    assert all(2.0 <= webhook.delay(2, None, rng) <= 4.0 for _ in range(100))
    assert webhook.wait_before_retry(0, RetryableError("429", retry_after=3.0), rng) == 3.0
    assert webhook.wait_before_retry(0, RetryableError("429", retry_after=11.0), rng) is None
    assert policy.wait_before_retry(0, RetryableError("429", retry_after=11.0), rng) == 8.0  # cut to the cap
    slept, stats = [], RequestStats()
    calls = iter([RetryableError("503", throttled=True), RetryableError("503"), "done"])

    def send():
        outcome = next(calls)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert policy.call(send, rng=rng, stats=stats, sleep=slept.append) == "done"
    assert len(slept) == 2 and (stats.requests, stats.retries, stats.throttled) == (3, 2, 1)
    with pytest.raises(TypeError):
        policy.call(lambda: int(None), rng=rng, sleep=slept.append)  # a bug: raised, not retried
    assert len(slept) == 2
