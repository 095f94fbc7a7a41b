"""Plain model functions for tests that load a model by spec (function:tests.support:NAME)."""


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
