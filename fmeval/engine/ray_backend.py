"""The engine's model calls on Ray, for runs that outgrow one machine.

The driver (the `fmeval run` process) stays the single writer of the run: it reads the dataset,
answers from the response cache, and hands only the misses to Ray workers, in batches; it
saves and writes each batch's answers as they come back. Resume, the lock, the cache and
exactly-once records therefore work as they do locally.

- Each worker rebuilds the runner from its spec and options, and reads credentials from its own
  environment: no key travels through Ray's object store. Its errors are masked by its own
  secrets registry before they leave it.
- Local models: one worker per GPU (or per group of CPU cores), each batching as a local run
  does. The driver makes the same length-sorted batches as a local run (it needs only the
  tokenizer), so greedy outputs are identical to the local backend's.
- Hosted models: the adaptive concurrency limit and the request and token rate limits live in
  one limiter actor, so that N workers share the provider's quota instead of multiplying it.
- Hosted answers stream back one by one (a Ray streaming generator), and the driver saves each
  as it arrives, not per batch: a killed driver has lost at most the requests in flight.
- Workers watch their driver and exit at once when it dies, instead of finishing their batches
  for nobody.
- A worker that dies mid-batch (killed, out of memory, its node lost) costs nothing but time:
  its unanswered prompts go to another worker, a replacement starts, and the summary counts both.
"""
from __future__ import annotations

import asyncio
import collections
import importlib
import itertools
import os
import random
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from fmeval.engine.calls import answer, batches, call_in_batch
from fmeval.errors import UserError
from fmeval.model_runners import load_runner
from fmeval.model_runners.base import ModelOutput, ModelRunner, RequestKind
from fmeval.retry import AdaptiveLimiter, RateLimiter, RequestStats, RetryPolicy, run_with_retries

if TYPE_CHECKING:  # workers import this module: they need neither pydantic nor the engine
    from fmeval.engine.engine import EngineOptions, Save

HOSTED_BATCH = 64
"""Prompts per task for a hosted model. Answers stream back one by one whatever its size, and a
lost worker's unanswered prompts alone are sent again; the limiter, not the batch, sets how many
requests are in flight."""
TASKS_PER_WORKER = 4  # tasks out at once per worker: enough to keep its share of the limit busy
HOSTED_WORKERS = 4
LIMITER_CONCURRENCY = 100_000  # calls the limiter actor may hold waiting at once
LEASE_MAX = 16  # slots one lease may take
REPORT_EVERY = 16  # successes a worker reports in one call
_WORKER_NUMBERS = itertools.count()
DRIVER_POLL_S = 0.05  # how often a worker checks that its driver is alive
PLUGIN_MODULES = "fmeval_plugin_modules"


def _runner_in_worker(spec: str, options: dict[str, Any], defaults: dict[str, Any]) -> ModelRunner:
    """The run's runner, rebuilt as the driver built it (same options, same defaults, and the
    modules that registered runner prefixes in the driver: `PLUGIN_MODULES` in `defaults`)."""
    defaults = dict(defaults)
    for module in defaults.pop(PLUGIN_MODULES, ()):
        importlib.import_module(module)
    runner = load_runner(spec, defaults=defaults, **options)
    runner.load()
    return runner


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _watch_driver(driver: tuple[str, int]) -> None:
    """Exit this worker the moment its driver process dies (when both share a node; elsewhere
    Ray's own clean-up of a dead job's actors applies)."""
    import select
    import threading
    import time

    import ray

    node, pid = driver
    if ray.get_runtime_context().get_node_id() != node:
        return

    def watch() -> None:
        try:  # Linux: woken the moment the driver exits (even before it is reaped)
            select.select([os.pidfd_open(pid)], [], [])
        except (AttributeError, OSError):  # no pidfd here: look every DRIVER_POLL_S
            while _alive(pid):
                time.sleep(DRIVER_POLL_S)
        os._exit(1)  # every request in flight here dies with it: nobody would save its answer

    threading.Thread(target=watch, name="fmeval-driver-watch", daemon=True).start()


class _BatchWorker:
    """A local model on its share of a node: one batch at a time, retried as locally."""

    def __init__(self, spec: str, options: dict[str, Any], defaults: dict[str, Any], retry: RetryPolicy, seed: int,
                 threads: int | None, driver: tuple[str, int]):
        _watch_driver(driver)
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.runner = _runner_in_worker(spec, options, defaults)
        self.retry, self.rng = retry, random.Random(seed)

    def ready(self) -> int:
        return os.getpid()

    def run(self, kind: RequestKind, texts: list[str]) -> tuple[list[ModelOutput], dict[str, int]]:
        stats = RequestStats()
        outputs = call_in_batch(self.runner, kind, texts, retry=self.retry, stats=stats, rng=self.rng)
        return outputs, asdict(stats)


class _RequestWorker:
    """A hosted model: many requests in flight, under the limits of the one limiter actor."""

    def __init__(self, spec: str, options: dict[str, Any], defaults: dict[str, Any], limiter: Any, name: str,
                 retry: RetryPolicy, seed: int, rate_limited: bool, driver: tuple[str, int]):
        _watch_driver(driver)
        self.runner = _runner_in_worker(spec, options, defaults)
        self.limiter = _LeasedSlots(limiter, name)
        self.rate = _RemoteRate(limiter) if rate_limited else None
        self.retry, self.seed = retry, seed
        self._saved: dict[tuple[int, int], asyncio.Event] = {}

    async def ready(self) -> int:
        return os.getpid()

    async def saved(self, task: int, indices: list[int]) -> None:
        """The driver saved these answers of task `task`: their slots may go."""
        for index in indices:
            event = self._saved.pop((task, index), None)
            if event is not None:
                event.set()

    async def run(self, kind: RequestKind, texts: list[str], task: int
                  ) -> AsyncIterator[tuple[list[tuple[int, ModelOutput]], dict[str, int]]]:
        """The answers that have arrived, as soon as any has: [(index in `texts`, answer)], and
        the request counts since the previous yield. A streaming generator, so that the driver
        saves each answer at once (and, when busy, many per call). A request keeps its slot
        until the driver says it saved the answer (`saved`): a killed driver has lost at most
        the requests in flight."""
        import functools

        single = self.runner.agenerate if kind == "generate" else self.runner.alog_probability
        stats = RequestStats()
        reported = asdict(stats)
        extra_tokens = self.runner.max_new_tokens or 0
        arrived: asyncio.Queue[tuple[int, ModelOutput]] = asyncio.Queue()

        async def on_result(index: int, outcome: Any) -> None:
            saved = self._saved[(task, index)] = asyncio.Event()
            await arrived.put((index, answer(outcome)))
            await saved.wait()

        requests = asyncio.ensure_future(run_with_retries(
            [functools.partial(single, text) for text in texts], limiter=self.limiter, retry=self.retry,
            rate=self.rate, costs=[len(text) // 4 + extra_tokens for text in texts], stats=stats, seed=self.seed,
            should_retry=self.runner.should_retry, on_result=on_result,
        ))
        try:
            remaining = len(texts)
            while remaining:
                bunch = [await arrived.get()]
                while not arrived.empty():
                    bunch.append(arrived.get_nowait())
                remaining -= len(bunch)
                now = asdict(stats)
                yield bunch, {name: now[name] - reported[name] for name in now}
                reported = now
            await requests
        finally:
            requests.cancel()


class _GlobalLimiter:
    """The concurrency and rate limits of every worker of a run, in one place.

    Workers lease slots and keep one while they have a request waiting for it, so that a busy
    run costs about one call here per REPORT_EVERY requests rather than two per request. A
    throttled request's slot comes back at once, so the adaptive limit still halves on
    throttling; successes are reported in bulk, so it still grows. Slots are held in a worker's
    name: a worker that dies gives its slots back (`drop`).
    """

    def __init__(self, maximum: int, requests_per_minute: float | None, tokens_per_minute: float | None):
        self._settings = (maximum, requests_per_minute, tokens_per_minute)
        self._limiter: AdaptiveLimiter | None = None
        self._rate: RateLimiter | None = None
        self._held: collections.Counter[str] = collections.Counter()
        self._dropped: set[str] = set()

    def _limits(self) -> tuple[AdaptiveLimiter, RateLimiter]:
        if self._limiter is None:  # made inside the actor's event loop, which uses them
            maximum, rpm, tpm = self._settings
            self._limiter = AdaptiveLimiter(maximum)
            self._rate = RateLimiter(requests_per_minute=rpm, tokens_per_minute=tpm)
        return self._limiter, self._rate  # type: ignore[return-value]

    async def lease(self, holder: str, want: int) -> int:
        """Wait for a free slot, then lease up to `want`: how many were leased."""
        limiter = self._limits()[0]
        taken = await limiter.acquire_up_to(want)
        if holder in self._dropped:  # it died while waiting: the slots are free again at once
            await limiter.abandon(taken)
            return 0
        self._held[holder] += taken
        return taken

    async def give_back(self, holder: str, count: int, successes: int, throttled: int) -> bool:
        """Outcomes since the holder's last report, and `count` slots it no longer needs. Whether
        more slots are leased than the limit allows now (after a cut): then the holder should
        give slots back as its requests finish."""
        limiter = self._limits()[0]
        count = min(count, self._held[holder])
        self._held[holder] -= count
        await limiter.record(successes=successes, throttled=throttled)
        if count:
            await limiter.abandon(count)
        return limiter.in_flight > limiter.limit

    async def drop(self, holder: str) -> None:
        """`holder` died: every slot it held is free again."""
        self._dropped.add(holder)
        count = self._held.pop(holder, 0)
        if count:
            await self._limits()[0].abandon(count)

    async def rate_wait(self, tokens: int) -> None:
        await self._limits()[1].wait(tokens)

    async def state(self) -> dict[str, int]:
        limiter = self._limits()[0]
        return {"max_concurrency": limiter.maximum, "lowest_concurrency": limiter.lowest_limit}


class _LeasedSlots:
    """The limiter interface `run_with_retries` expects, over slots leased from `_GlobalLimiter`.

    One lease request is out at a time, as a task of its own, asking for as many slots as
    requests are waiting; a waiting request never blocks on it, so a slot freed here meanwhile
    goes to it. Slots nobody here is waiting for go back at once.
    """

    def __init__(self, handle: Any, holder: str):
        self._handle, self._holder = handle, holder
        self._condition: asyncio.Condition | None = None
        self._free = self._waiting = 0
        self._lease: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self._successes = self._throttled = 0
        self._oversubscribed = False

    def _cond(self) -> asyncio.Condition:
        if self._condition is None:  # made inside the worker's event loop, which uses it
            self._condition = asyncio.Condition()
        return self._condition

    async def acquire(self) -> None:
        condition = self._cond()
        async with condition:
            self._waiting += 1
            try:
                while self._free == 0:
                    if self._failure is not None:
                        raise self._failure
                    if self._lease is None:
                        self._lease = asyncio.ensure_future(self._take_lease(min(LEASE_MAX, self._waiting)))
                    await condition.wait()
                self._free -= 1
            finally:
                self._waiting -= 1

    async def _take_lease(self, want: int) -> None:
        condition = self._cond()
        try:
            granted = await self._handle.lease.remote(self._holder, want)
        except BaseException as exc:  # the limiter is gone: every waiter here must hear it
            async with condition:
                self._failure, self._lease = exc, None
                condition.notify_all()
            return
        async with condition:
            self._lease = None
            self._free += granted
            surplus = max(0, self._free - self._waiting)
            self._free -= surplus
            condition.notify_all()
        if surplus:
            self._oversubscribed = await self._handle.give_back.remote(self._holder, surplus, 0, 0)

    async def release(self, *, throttled: bool) -> None:
        condition = self._cond()
        async with condition:
            if throttled:
                self._throttled += 1
            else:
                self._successes += 1
            if not throttled and not self._oversubscribed and self._waiting > self._free:
                self._free += 1  # a request here waits without a slot: this one goes straight to it
                condition.notify(1)
                if self._successes < REPORT_EVERY:
                    return
                returned = 0
            else:
                surplus = max(0, self._free - self._waiting)  # idle slots go back too
                self._free -= surplus
                returned = 1 + surplus
            outcomes = (self._successes, self._throttled)
            self._successes = self._throttled = 0
        self._oversubscribed = await self._handle.give_back.remote(self._holder, returned, *outcomes)


class _RemoteRate:
    def __init__(self, handle: Any):
        self._handle = handle

    async def wait(self, tokens: int) -> None:
        await self._handle.rate_wait.remote(tokens)


class RayBackend:
    """Sends an engine's model calls to Ray workers; see the module docstring.

    `address`: None starts a local Ray instance (on loopback); "auto" or "ray://host:port"
    joins a cluster. `workers`: how many; by default one per GPU, else one per two CPUs, for
    local models, and 4 for hosted ones. The model loads on every worker; the run starts as soon
    as the first has it loaded (so a bad model fails before the run starts), and the others take
    their batches when they are up.
    """

    def __init__(self, *, spec: str, runner: ModelRunner, runner_options: dict[str, Any],
                 runner_defaults: dict[str, Any], options: EngineOptions, seed: int, address: str | None = None,
                 workers: int | None = None):
        import ray

        self._ray = ray
        if not ray.is_initialized():
            settings: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False}
            if address is None:
                settings["_node_ip_address"] = "127.0.0.1"  # a local instance listens on loopback only
            ray.init(**settings)
        self.hosted = runner.capabilities.single_requests
        self._driver = (ray.get_runtime_context().get_node_id(), os.getpid())  # the workers watch it
        self._spec, self._runner_options, self._seed = spec, dict(runner_options), seed
        from fmeval.model_runners import RUNNERS

        # A prefix registered by a module the driver imported by hand: the workers import it too.
        modules = sorted({factory.__module__ for factory in RUNNERS.values()} - {"__main__"})
        self._runner_defaults = {**runner_defaults, PLUGIN_MODULES: modules}
        self._retry = RetryPolicy(max_retries=options.max_retries, base_delay_s=options.retry_base_delay_s)
        self._limiter = None
        if self.hosted:
            maximum = options.max_concurrency or runner.capabilities.max_concurrency
            self._limiter = ray.remote(_GlobalLimiter).options(
                num_cpus=0, max_concurrency=LIMITER_CONCURRENCY).remote(
                maximum, options.requests_per_minute, options.tokens_per_minute)
            self._rate_limited = bool(options.requests_per_minute or options.tokens_per_minute)
        self._count = workers or self._default_workers()
        self.workers: list[Any] = []
        self._names: dict[Any, str] = {}
        self.failures = self.resubmitted = 0
        # One worker first, alone on the CPUs: it proves the model loads (a bad one fails here, before
        # the run) and the run starts with it; the others start meanwhile, their batches waiting in
        # their queues until they are up.
        self.workers.append(self._start_worker())
        self._wait_ready(self.workers)
        if self._limiter is not None:  # started meanwhile; the first requests must not wait for it
            ray.get(self._limiter.state.remote())
        self._up = set(self.workers)  # workers known to have loaded the model
        self.workers += [self._start_worker() for _ in range(self._count - 1)]

    def _default_workers(self) -> int:
        if self.hosted:
            return HOSTED_WORKERS
        resources = self._ray.cluster_resources()
        return int(resources.get("GPU", 0)) or max(1, int(resources.get("CPU", 1)) // 2)

    def _start_worker(self) -> Any:
        # Unique in this process across backends: a closed backend's names may not be free yet.
        name = f"fmeval-worker-{os.getpid()}-{next(_WORKER_NUMBERS)}"
        if self.hosted:
            actor = self._ray.remote(_RequestWorker).options(name=name, num_cpus=0, max_concurrency=1000)
            handle = actor.remote(self._spec, self._runner_options, self._runner_defaults, self._limiter, name,
                                  self._retry, self._seed, self._rate_limited, self._driver)
        else:
            resources = self._ray.cluster_resources()
            if resources.get("GPU", 0) >= 1:
                actor, threads = self._ray.remote(_BatchWorker).options(name=name, num_gpus=1), None
            else:
                threads = max(1, int(resources.get("CPU", 1)) // self._count)
                actor = self._ray.remote(_BatchWorker).options(name=name, num_cpus=threads)
            handle = actor.remote(self._spec, self._runner_options, self._runner_defaults, self._retry, self._seed,
                                  threads, self._driver)
        self._names[handle] = name
        return handle

    def _wait_ready(self, workers: list[Any]) -> None:
        try:
            self._ray.get([worker.ready.remote() for worker in workers])
        except self._ray.exceptions.RayError as exc:
            self.close()
            cause = getattr(exc, "cause", None) or getattr(getattr(exc, "error", None), "cause", None)
            if isinstance(cause, UserError):
                raise cause from None
            raise UserError(f"the Ray workers could not start the model {self._spec!r}: {exc}") from exc

    def send(self, runner: ModelRunner, kind: RequestKind, texts: list[str], save: Save | None,
             stats: RequestStats) -> Iterator[list[tuple[int, ModelOutput]]]:
        if self.hosted:
            return self._stream(kind, texts, save, stats)
        return self._batches(kind, texts, batches(runner, kind, texts), save, stats)  # the same batches as locally

    def _stream(self, kind: RequestKind, texts: list[str], save: Save | None,
                stats: RequestStats) -> Iterator[list[tuple[int, ModelOutput]]]:
        """Hosted: each answer is saved and yielded as it arrives. Prompts go out in tasks of
        HOSTED_BATCH, at most TASKS_PER_WORKER at a time to each worker that is up, so that the
        first worker takes all the work until the others have started; a dead worker's
        unanswered prompts go back in the queue."""
        ray = self._ray
        queue = collections.deque(list(range(start, min(start + HOSTED_BATCH, len(texts))))
                                  for start in range(0, len(texts), HOSTED_BATCH))
        pending: dict[Any, tuple[int, list[int], set[int], Any]] = {}
        tasks: collections.Counter[Any] = collections.Counter()
        starting = {worker.ready.remote(): worker for worker in self.workers if worker not in self._up}
        turn = 0

        def fill(worker: Any) -> None:
            nonlocal turn
            while queue and tasks[worker] < TASKS_PER_WORKER:
                group = queue.popleft()
                stream = worker.run.options(num_returns="streaming").remote(kind, [texts[i] for i in group], turn)
                pending[stream] = (turn, group, set(range(len(group))), worker)
                tasks[worker] += 1
                turn += 1

        def lost(worker: Any) -> None:
            for stream, (_, group, unanswered, owner) in list(pending.items()):
                if owner is worker:
                    del pending[stream]
                    queue.appendleft([group[i] for i in sorted(unanswered)])
                    self.resubmitted += 1
            tasks.pop(worker, None)
            replacement = self._replace(worker)
            if replacement is not None:
                fill(replacement)

        for worker in self.workers:
            if worker in self._up:
                fill(worker)
        while pending or (queue and starting):
            waiting = [*pending, *starting]
            ready, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            if not ready:
                ready, _ = ray.wait(waiting, num_returns=1)
            answers: list[tuple[int, ModelOutput]] = []
            receipts: dict[tuple[Any, int], list[int]] = collections.defaultdict(list)
            for waited in ready:
                if waited in starting:
                    worker = starting.pop(waited)
                    try:
                        ray.get(waited)
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                        lost(worker)
                        continue
                    self._up.add(worker)
                    fill(worker)
                    continue
                if waited not in pending:  # its worker was lost in this round
                    continue
                task, group, unanswered, worker = pending[waited]
                try:
                    bunch, counts = ray.get(next(waited))
                except StopIteration:
                    del pending[waited]
                    tasks[worker] -= 1
                    fill(worker)
                    continue
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                    lost(worker)
                    continue
                _add(stats, counts)
                for position, reply in bunch:
                    unanswered.discard(position)
                    answers.append((group[position], reply))
                    receipts[(worker, task)].append(position)
            if answers:
                if save is not None:
                    save(answers)
                for (worker, task), positions in receipts.items():  # saved: the workers may free those slots
                    worker.saved.remote(task, positions)
                yield answers

    def _batches(self, kind: RequestKind, texts: list[str], groups: list[list[int]], save: Save | None,
                 stats: RequestStats) -> Iterator[list[tuple[int, ModelOutput]]]:
        """Local models: one answer per batch call, as each batch finishes."""
        ray = self._ray
        pending: dict[Any, tuple[list[int], Any]] = {}
        turn = 0

        def submit(group: list[int]) -> None:
            nonlocal turn
            worker = self.workers[turn % len(self.workers)]
            turn += 1
            pending[worker.run.remote(kind, [texts[i] for i in group])] = (group, worker)

        for group in groups:
            submit(group)
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            group, worker = pending.pop(done)
            try:
                outputs, counts = ray.get(done)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                self._replace(worker)
                self.resubmitted += 1
                submit(group)
                continue
            _add(stats, counts)
            answers = list(zip(group, outputs))
            if save is not None:
                save(answers)
            yield answers

    def _replace(self, dead: Any) -> Any:
        """A worker died: it leaves the pool once (its other batches fail too), gives its slots of
        the global limit back, and a new one takes its place: the new one, once it is up (None
        when `dead` was replaced already)."""
        if dead not in self.workers:
            return None
        self.failures += 1
        self.workers.remove(dead)
        if self._limiter is not None:
            self._ray.get(self._limiter.drop.remote(self._names.pop(dead)))
        replacement = self._start_worker()
        self._wait_ready([replacement])
        self.workers.append(replacement)
        self._up.add(replacement)
        return replacement

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"backend": "ray", "workers": self._count, "worker_failures": self.failures,
                                  "resubmitted_batches": self.resubmitted}
        if self._limiter is not None:
            report.update(self._ray.get(self._limiter.state.remote()))
        return report

    def close(self) -> None:
        """Stop the workers and the limiter (Ray itself, which may be a shared cluster, stays up)."""
        for actor in [*self.workers, self._limiter]:
            if actor is not None:
                self._ray.kill(actor)
        self.workers, self._limiter = [], None


def _add(stats: RequestStats, counts: dict[str, int]) -> None:
    for name, value in counts.items():
        setattr(stats, name, getattr(stats, name) + value)
