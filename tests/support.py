"""Plain model functions for tests that load a model by spec (function:tests.support:NAME), and
loopback servers for tests."""
import asyncio
import threading


def upper_model(prompt: str) -> str:
    return prompt.upper()


def echo_answer(prompt: str) -> str:
    """Answers with the last word of the prompt: a deterministic stand-in for a model."""
    return prompt.rstrip("?. ").split()[-1]


def slow_echo(prompt: str) -> str:
    """Echoes after a short pause, so that a run lasts long enough to be killed part-way."""
    import time

    time.sleep(0.02)
    return prompt


def gated_echo(prompt: str) -> str:
    """Echoes once the file $FMEVAL_TEST_GATE exists: a test holds a run part-way, however loaded
    the machine, until it has done what it must do while the run is going."""
    import os
    import time
    from pathlib import Path

    gate = Path(os.environ["FMEVAL_TEST_GATE"])
    while not gate.exists():
        time.sleep(0.01)
    return prompt


def context_reader(prompt: str) -> str:
    """Answers from the prompt's context when it has one (the word after the last 'is', 'was', 'by' ...)."""
    answers = {"Biscuit": "Biscuit", "1887": "1887", "dark green": "dark green", "Agnes Moore": "Agnes Moore",
               "five arches": "five", "bicycles": "bicycles"}
    for clue, answer in answers.items():
        if clue in prompt:
            return answer
    return "I do not know"


def fails_on_even_numbers(prompt: str) -> str:
    """Raises for prompts ending in an even digit: half of `q0 .. q9` fail, every time."""
    if prompt[-1].isdigit() and int(prompt[-1]) % 2 == 0:
        raise RuntimeError(f"cannot answer {prompt!r}")
    return prompt


def logged_echo(prompt: str) -> str:
    """Echoes after a short pause, and appends the prompt to the file $FMEVAL_TEST_CALL_LOG:
    a record of every model call, across processes that are killed."""
    import os
    import time

    time.sleep(0.02)
    with open(os.environ["FMEVAL_TEST_CALL_LOG"], "a", encoding="utf-8") as log:
        log.write(prompt + "\n")
    return prompt


def guesses_without_context(prompt: str) -> str:
    """Reads the answer from the context when the prompt has one; otherwise makes one up."""
    if "Context:" in prompt:
        return context_reader(prompt)
    guesses = {"dog": "Rex", "year": "1902", "colour": "blue", "choir": "John Smith", "arches": "three",
               "ferry": "lorries"}
    return next((guess for clue, guess in guesses.items() if clue in prompt), "nothing")


def supported_by_context_judge(prompt: str) -> str:
    """A faithfulness judge: grade 5 when every word of the response is in the context, else 1."""
    import re

    context = set(re.findall(r"\w+", re.search(r"Context: (.*)", prompt).group(1).lower()))
    response = re.findall(r"\w+", re.search(r"Response: (.*)", prompt).group(1).lower())
    return "[[5]]" if set(response) <= context else "[[1]]"


def serve_in_thread(app):
    """An aiohttp application on a loopback port, on an event loop in a daemon thread: (its URL, stop)."""
    from aiohttp import web

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def stop():
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return f"http://127.0.0.1:{port}", stop


class ForecastModel:
    """A linear autoregressive forecaster (saved with joblib by the time-series tests): per forecast
    step k, sum_l a[k][l] x[T-1-l] + sum_l c[k][l] z[T-1-l] + w . u + b; it answers {"mean": [...]}."""

    def __init__(self, a, c, w, b):
        self.a, self.c, self.w, self.b = a, c, w, b

    def predict(self, records):
        import numpy as np

        answers = []
        for r in records:
            x, z = np.array(r["target_time_series"]), np.array(r["related_time_series"]["price"])
            u = np.array([r["static_covariates"]["store_size"], r["static_covariates"]["region"]])
            answers.append({"mean": (np.array(self.a) @ x[::-1] + np.array(self.c) @ z[::-1] + np.array(self.w) @ u
                                     + self.b).tolist()})
        return answers
