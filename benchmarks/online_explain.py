"""Explanations served with each prediction: p50 and p99 latency at 20 concurrent clients for a
20-feature gradient-boosted classifier, `fmeval serve --explain`'s app (requests batched, one model call
and one solve per batch) against `shap.KernelExplainer` called per request (a new explainer on the same
baseline, the same samples and seed, one request at a time: shap's sampling uses numpy's global
generator) behind the same kind of aiohttp server. Both on loopback, the clients in another process, the
same rows; the attributions
must agree to 1e-6. Last line: {"name", "ours_s" (p50), "reference_s" (p50), "ratio", ...}.
Goal: p50 ratio <= 0.5.
"""
from __future__ import annotations

import asyncio
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import shap
from sklearn.ensemble import GradientBoostingClassifier

from common import result_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fmeval.explain.online import OnlineExplainer, build_app, parse_records  # noqa: E402
from tests.support import serve_in_thread  # noqa: E402

FEATURES, BASELINE_ROWS, SAMPLES, SEED = 20, 10, 200, 0
CLIENTS, REQUESTS_EACH = 20, 10


def reference_app(model, baseline):
    """One shap.KernelExplainer per request, one request at a time."""
    from aiohttp import web

    lock = threading.Lock()
    predict = lambda rows: model.predict_proba(rows)[:, 1]  # noqa: E731

    def explain(row):
        with lock:
            explainer = shap.KernelExplainer(predict, baseline)
            np.random.seed(SEED)
            values = np.asarray(explainer.explain(row[None, :], nsamples=SAMPLES, l1_reg=False))
            return {"prediction": float(predict(row[None, :])[0]), "attributions": values.tolist()}

    async def invocations(request):
        rows = parse_records(await request.read(), request.content_type or "", FEATURES)
        return web.json_response(await asyncio.to_thread(explain, rows[0]))

    app = web.Application()
    app.router.add_post("/invocations", invocations)
    return app


def load(url, rows):
    """The clients, in a process of their own (so that they do not share the servers' interpreter lock)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_clients, (url, rows))


def _clients(url, rows):
    """Each client sends its rows one request after another; all clients at once. Latency per request."""
    latencies, answers = [0.0] * len(rows), [None] * len(rows)

    def client(indices):
        with httpx.Client(timeout=300) as http:
            for i in indices:
                started = time.perf_counter()
                response = http.post(f"{url}/invocations", json={"instances": [rows[i].tolist()]})
                latencies[i] = time.perf_counter() - started
                response.raise_for_status()
                answers[i] = response.json()

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, np.array_split(np.arange(len(rows)), CLIENTS)))
    return np.array(latencies), answers


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, FEATURES))
    y = (X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3] + 0.5 * X[:, 4] ** 2 > 0.5).astype(int)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(X, y)
    baseline = X[:BASELINE_ROWS]
    rows = X[1000:1000 + CLIENTS * REQUESTS_EACH]

    explainer = OnlineExplainer(lambda batch: model.predict_proba(batch)[:, 1], baseline=baseline, num_samples=SAMPLES,
                                seed=SEED, feature_headers=[f"f{i}" for i in range(FEATURES)])
    url, stop = serve_in_thread(build_app(explainer, batch_window_ms=5))
    try:
        ours, ours_answers = load(url, rows)
        batches = httpx.get(f"{url}/ping").json()["batches"]
    finally:
        stop()
    url, stop = serve_in_thread(reference_app(model, baseline))
    try:
        reference, reference_answers = load(url, rows)
    finally:
        stop()
    largest = 0.0
    for mine, theirs in zip(ours_answers, reference_answers):
        served = np.array([f["attributions"][0]["attribution"][0] for f in mine["explanations"]["kernel_shap"][0]])
        largest = max(largest, float(np.abs(served - np.array(theirs["attributions"])).max()))
        assert abs(mine["predictions"]["data"][0][0] - theirs["prediction"]) < 1e-12
    assert largest <= 1e-6, f"attributions differ by {largest}"
    p50, p99 = np.percentile(ours, [50, 99]), np.percentile(reference, [50, 99])
    print(f"ours p50 {p50[0]:.3f} s p99 {p50[1]:.3f} s in {batches} batches; reference p50 {p99[0]:.3f} s "
          f"p99 {p99[1]:.3f} s; {len(rows)} requests from {CLIENTS} clients; largest difference {largest:.2e}")
    result_line("online_explain", float(p50[0]), float(p99[0]), ours_p99_s=round(float(p50[1]), 3),
                reference_p99_s=round(float(p99[1]), 3), requests=len(rows), clients=CLIENTS, batches=batches,
                max_attribution_difference=largest)


if __name__ == "__main__":
    main()
