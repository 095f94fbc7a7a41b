"""The dashboard at scale: a store with 10,000 runs of 1,000 models (and 200 model cards of 10
versions each, every other one with an approved version under newer drafts, and a registered
webhook that never answers, so 2,000 events wait in the outbox), each page timed over real HTTP
(a `fmeval dashboard` process, logged in), against one indexed SQLite query for the rows of the
slowest page (the reference: what the page cannot go below).

Pages: models (first page, filtered, sorted by risk), one model, runs (first page, filtered,
sorted, page 100), model cards. Every page must answer 200 and show what it lists.
Last line: {"name", "ours_s", "reference_s", "ratio", "slowest_page", "pages"}. Goal: every page's
median under 0.3 s.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from common import result_line

from fmeval.governance.cards import ModelCard
from fmeval.governance.store import CardStore
from fmeval.runs.store import runs_table
from fmeval.store import Database

RUNS, MODELS, CARDS, VERSIONS, ROUNDS = 10_000, 1_000, 200, 10, 7
PASSWORD = "benchmark password"


def silent_webhook() -> tuple[socket.socket, str]:
    """A URL whose server accepts connections and never answers (the socket is never read)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


def fill(store: Path, webhook: str) -> None:
    database = Database(store)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(RUNS):
        model = f"model-{i % MODELS:04d}"
        scores = [{"name": "factual_knowledge", "value": (i % 97) / 97, "ci_lower": 0.1, "ci_upper": 0.9, "count": 100}]
        rows.append({"run_id": f"run-{i:06d}", "created_at": (start + dt.timedelta(minutes=i)).isoformat(),
                     "evaluation": ("factual_knowledge", "qa_accuracy")[i % 2], "dataset": f"dataset-{i % 7}",
                     "dataset_sha256": f"{i:064x}", "model": model, "runner_identity": json.dumps({"model": model}),
                     "config_hash": "0" * 32, "scores": json.dumps(scores), "num_records": 100, "num_errors": 0,
                     "fmeval_version": "0.1.0", "git_commit": None, "output_dir": f"/runs/run-{i:06d}"})
    with database.transaction() as connection:
        connection.execute(runs_table.insert(), rows)
    with CardStore(database) as cards:
        cards.add_webhook(webhook, actor="bench")
        for i in range(CARDS):
            name = f"card-{i:04d}"
            for version in range(1, VERSIONS + 1):
                content = {"model_overview": {"model_name": f"model-{i:04d}", "model_description": f"version {version}"},
                           "intended_uses": {"risk_rating": ("High", "Medium", "Low")[(i + version) % 3]}}
                card = ModelCard.model_validate(content)
                if version == 1:
                    cards.create(name, card, author="bench")
                else:
                    cards.save(name, card, based_on=version - 1, author="bench")
                if i % 2 == 0 and version == VERSIONS // 2:  # an approved version under newer drafts
                    digest = cards.version(name).content_hash
                    cards.submit(name, version=version, content_hash=digest, actor="bench")
                    cards.approve(name, version=version, content_hash=digest, actor="reviewer")
    database.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store.sqlite"
        listener, webhook = silent_webhook()
        fill(store, webhook)
        env = {**os.environ, "FMEVAL_BENCH_PASSWORD": PASSWORD}
        fmeval = str(Path(sys.executable).parent / "fmeval")
        subprocess.run([fmeval, "users", "add", "viewer", "--role", "viewer", "--password-env", "FMEVAL_BENCH_PASSWORD",
                        "--store", str(store)], check=True, env=env, capture_output=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([fmeval, "dashboard", "--port", str(port), "--store", str(store)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=30)
            for _ in range(200):
                try:
                    client.get("/login")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            client.post("/login", data={"username": "viewer", "password": PASSWORD})
            pages = {"models": ("/", "model-0000"), "models filtered": ("/?q=model-09", "model-0900"),
                     "models by risk": ("/?sort=risk", "High"), "model": ("/models/model-0042", "run-009042"),
                     "runs": ("/runs", "run-009999"), "runs filtered": ("/runs?model=model-0007", "run-009007"),
                     "runs by model": ("/runs?sort=model", "model-0000"), "runs page 100": ("/runs?page=100", "run-005049"),
                     "cards": ("/cards", "card-0000"), "card": ("/cards/card-0000", "version 10")}
            medians = {}
            for name, (path, expected) in pages.items():
                seconds = []
                for _ in range(ROUNDS):
                    started = time.perf_counter()
                    response = client.get(path)
                    seconds.append(time.perf_counter() - started)
                    assert response.status_code == 200 and expected in response.text, (name, response.status_code)
                medians[name] = statistics.median(seconds)
                print(f"{name:16} {medians[name] * 1000:7.1f} ms")
        finally:
            server.terminate()
            server.wait(10)
            listener.close()
        with sqlite3.connect(store) as connection:  # the rows the models page reads, by the created_at index
            times = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                connection.execute("SELECT run_id, created_at, evaluation, dataset, dataset_sha256, model, "
                                   "runner_identity, scores, num_records, output_dir FROM runs "
                                   "ORDER BY created_at DESC").fetchall()
                times.append(time.perf_counter() - started)
    slowest = max(medians, key=medians.get)
    assert medians[slowest] < 0.3, f"{slowest}: {medians[slowest]:.3f} s"
    result_line("dashboard_scale", medians[slowest], statistics.median(times), slowest_page=slowest,
                pages={name: round(value, 4) for name, value in medians.items()})


if __name__ == "__main__":
    main()
