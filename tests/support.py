"""Plain model functions for tests that load a model by spec (function:tests.support:NAME)."""


def upper_model(prompt: str) -> str:
    return prompt.upper()


def echo_answer(prompt: str) -> str:
    """Answers with the last word of the prompt: a deterministic stand-in for a model."""
    return prompt.rstrip("?. ").split()[-1]
