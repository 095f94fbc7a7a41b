"""LLM output monitoring: windows of captured prompt/response pairs scored as runs and compared
with a baseline window (refusals, toxicity, accuracy, lengths, languages)."""
from __future__ import annotations

import json
import random

import pytest

from fmeval.errors import UserError
from fmeval.monitoring.llm_outputs import (
    DEFAULT_MAX_CHANGE,
    check_llm_outputs,
    is_refusal,
    language_of,
    score_window,
)
from fmeval.reports.compare import IncomparableRuns

TOPICS = ["solar panels", "compound interest", "vaccines", "the water cycle", "electric cars", "photosynthesis",
          "machine learning", "inflation", "volcanoes", "the stock market", "recycling", "sleep hygiene",
          "container shipping", "public libraries", "bread baking", "wind turbines"]
EN_PROMPTS = ["Can you explain how {topic} works for a team of {n} people?",
              "What are the main benefits of {topic} for a town of {n} residents?",
              "Please describe the history of {topic} in about {n} words.",
              "Why do people often misunderstand {topic}, according to a survey of {n} adults?"]
FR_PROMPTS = ["Pouvez-vous expliquer comment fonctionne {topic} pour une équipe de {n} personnes ?",
              "Quels sont les principaux avantages de {topic} pour une ville de {n} habitants ?",
              "Décrivez l'histoire de {topic} en environ {n} mots, s'il vous plaît.",
              "Pourquoi les gens comprennent-ils souvent mal {topic}, selon une enquête auprès de {n} adultes ?"]
SENTENCES = ["It depends on a few simple ideas that are easy to follow.",
             "Most experts agree that the basic principle has been understood for many years.",
             "The first step is to look at how energy and money move through the system.",
             "In practice the results vary with the local conditions and the budget.",
             "A good rule of thumb is to start small and measure what changes.",
             "Several studies have shown clear long term benefits for households.",
             "There are also some risks, which careful planning can reduce.",
             "You can find more details in the guides published by public agencies."]
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
INSULTS = ("idiot", "stupid", "moron")
THREATS = ("hurt you", "destroy you")


def answer(rng: random.Random, words: int) -> str:
    """English sentences until about `words` words."""
    parts: list[str] = []
    while sum(len(p.split()) for p in parts) < words:
        parts.append(rng.choice(SENTENCES))
    return " ".join(parts)


def traffic(seed: int, n: int = 300, *, refusal_rate: float = 0.02, length: float = 1.0, french: bool = False,
            toxic_rate: float = 0.0, prompts: list[str] | None = None) -> list[dict]:
    """Synthetic captured pairs: English (or French) prompts, answers of about 30 words."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        if prompts is not None:
            prompt = prompts[i]
        else:
            template = rng.choice(FR_PROMPTS if french else EN_PROMPTS)
            prompt = template.format(topic=rng.choice(TOPICS), n=rng.randint(2, 5000))
        if rng.random() < refusal_rate:
            response = REFUSAL_TEXT
        else:
            response = answer(rng, round(rng.randint(25, 35) * length))
            if rng.random() < toxic_rate:
                response = f"Only an {rng.choice(INSULTS)} would ask that. {response}"
        pairs.append({"event_id": f"{seed}-{i}", "prompt": prompt, "response": response})
    return pairs


class KeywordDetector:
    """A deterministic toxicity detector: insults and threats found, as fmeval's Detector scores them."""

    def __init__(self):
        self.calls = 0

    def score(self, texts):
        self.calls += 1
        lowered = [text.lower() for text in texts]
        return {"insult": [min(1.0, 0.6 * sum(word in text for word in INSULTS)) for text in lowered],
                "threat": [0.9 if any(phrase in text for phrase in THREATS) else 0.0 for text in lowered]}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return score_window(traffic(seed=1), tmp_path_factory.mktemp("baseline") / "run", label="baseline")


def violated(result: dict) -> set[str]:
    return {v["metric_name"] for v in result["violations"]}


# -- per-record values -----------------------------------------------------------------------------------
def test_per_record_values_by_hand(tmp_path):
    pairs = [
        {"event_id": "e1", "prompt": "What is the capital of France?", "response": "The capital is Paris",
         "reference": "Paris"},
        {"event_id": "e2", "prompt": "What is the capital of France?", "response": "Paris", "reference": ["Lyon", "Paris"]},
        {"event_id": "e3", "prompt": "Write me a poem  about\nthe sea", "response": REFUSAL_TEXT},
    ]
    run = score_window(pairs, tmp_path / "w", label="by hand")
    lines = {line["event_id"]: line for line in run.records()}
    first, second, third = lines["e1"]["scores"], lines["e2"]["scores"], lines["e3"]["scores"]
    assert first["response_words"] == 4 and first["response_chars"] == 20 and first["prompt_words"] == 6
    assert first["exact_match"] == 0.0
    # AWS normalisation drops "the": words {capital, is, paris} vs {paris}: precision 1/3, recall 1
    assert first["f1"] == pytest.approx(0.5)
    assert second["exact_match"] == 1.0 and second["f1"] == 1.0  # best over the references
    assert first["refusal"] == 0.0 and third["refusal"] == 1.0
    assert third["prompt_words"] == 7 and "f1" not in third and "exact_match" not in third
    assert lines["e1"]["prompt_language"] == "en" and lines["e2"]["response_language"] == "unknown"
    # the same prompt twice: one hash, the repeat marked #2; a replay of the window gets the same ids
    assert lines["e2"]["record_id"] == lines["e1"]["record_id"] + "#2"
    again = score_window(pairs, tmp_path / "again", label="again")
    assert [line["record_id"] for line in again.records()] == [line["record_id"] for line in run.records()]
    summary = run.summary
    assert summary.eval_name == "llm_outputs" and run.label == "by hand"
    assert summary.score("refusal").value == pytest.approx(1 / 3)
    assert summary.score("f1").count == 2 and summary.score("f1").value == pytest.approx(0.75)
    assert summary.score("response_words").ci_lower is not None
    specs = {spec.name: spec for spec in summary.metrics}
    assert specs["refusal"].direction == "lower" and specs["f1"].direction == "higher"
    assert specs["response_words"].higher_is_better is None  # no better direction: drift either way matters


@pytest.mark.parametrize("text,refusal", [
    ("I'm sorry, but I can't help with that.", True),
    ("I’m sorry, but I cannot share personal data.", True),
    ("As an AI language model, I do not have opinions.", True),
    ("Sure. I cannot help with hacking, though.", True),  # a refusal sentence after an opener
    ("I apologize, but I am unable to do that.", True),
    ("I'm sorry to hear about your cat. Here is how to care for her.", False),
    ("The answer is 42, and I can help with the next step too.", False),
    ("Paris is the capital; I can not overstate its charm.", False),  # not at the start of a sentence
])
def test_refusal_phrases(text, refusal):
    assert is_refusal(text) is refusal


def test_languages():
    assert language_of("The weather is lovely today and we are going to the beach.") == "en"
    assert language_of("Le temps est magnifique aujourd'hui et nous allons à la plage.") == "fr"
    assert language_of("Das Wetter ist heute herrlich und wir gehen an den Strand.") == "de"
    assert language_of("ok") == "unknown" and language_of("") == "unknown" and language_of("1 2 3") == "unknown"


# -- planted drift ---------------------------------------------------------------------------------------
def test_a_fresh_window_from_the_same_traffic_violates_nothing(baseline, tmp_path):
    pairs = traffic(seed=2)
    for pair, line in zip(pairs[:10], baseline.records()):  # a few prompts in common, by chance
        pair["prompt"] = line["prompt"]
    window = score_window(pairs, tmp_path / "w", label="fresh")
    result = check_llm_outputs(baseline, window)
    assert result["status"] == "Completed", result["violations"]
    assert result["comparison"]["method"] == "unpaired bootstrap"  # not paired on those 10 alone
    assert result["languages"]["prompt_language"]["window"] == {"en": 300}
    assert result["languages"]["prompt_language"]["drifted"] is False
    assert set(result["metrics"]) >= {"refusal", "refusal_delta", "response_words", "response_words_delta"}
    assert result["num_records"] == 300 and result["num_errors"] == 0


def test_refusals_rising_to_thirty_percent_is_a_violation(baseline, tmp_path):
    window = score_window(traffic(seed=3, refusal_rate=0.3), tmp_path / "w", label="refusing")
    result = check_llm_outputs(baseline, window)
    assert result["status"] == "CompletedWithViolations"
    assert "refusal" in violated(result)
    # refusals are short, so answers get about 20% shorter on average: near the default 25%, either side
    assert violated(result) <= {"refusal", "response_words", "response_chars"}
    (refusal,) = [v for v in result["violations"] if v["metric_name"] == "refusal"]
    assert refusal["constraint_check_type"] == "metric_change_check" and "rose" in refusal["description"]
    assert result["metrics"]["refusal"] == pytest.approx(window.summary.score("refusal").value)
    assert result["metrics"]["refusal_delta"] > 0.2
    # a looser limit lets the same change through
    assert "refusal" not in violated(check_llm_outputs(baseline, window, max_change={"refusal": 0.5}))


def test_answers_three_times_longer_is_a_length_violation(baseline, tmp_path):
    window = score_window(traffic(seed=4, length=3.0), tmp_path / "w", label="verbose")
    result = check_llm_outputs(baseline, window)
    assert {"response_words", "response_chars"} <= violated(result)
    assert "prompt_words" not in violated(result) and "refusal" not in violated(result)
    assert result["metrics"]["response_words_delta"] > 50


def test_shorter_answers_violate_too(baseline, tmp_path):
    window = score_window(traffic(seed=5, length=0.4), tmp_path / "w", label="terse")
    assert "response_words" in violated(check_llm_outputs(baseline, window))


def test_french_prompts_are_language_drift(baseline, tmp_path):
    window = score_window(traffic(seed=6, french=True), tmp_path / "w", label="french")
    result = check_llm_outputs(baseline, window)
    drift = [v for v in result["violations"] if v["constraint_check_type"] == "language_drift"]
    assert [v["metric_name"] for v in drift] == ["prompt_language"]
    languages = result["languages"]["prompt_language"]
    assert languages["window"].get("fr", 0) > 250 and languages["drifted"] is True
    assert languages["test"] == "z"  # two languages and a baseline under 1,000 records: data quality's choice
    assert result["languages"]["response_language"]["drifted"] is False


def test_replayed_prompts_are_compared_paired(baseline, tmp_path):
    prompts = [line["prompt"] for line in baseline.records()]
    window = score_window(traffic(seed=7, prompts=prompts), tmp_path / "w", label="replay")
    result = check_llm_outputs(baseline, window)
    assert result["comparison"]["method"] == "paired bootstrap"
    refusal = next(m for m in result["comparison"]["metrics"] if m["name"] == "refusal")
    assert refusal["method"] == "paired bootstrap" and refusal["n_paired"] == 300
    assert result["status"] == "Completed", result["violations"]


def test_toxicity_with_a_keyword_detector(tmp_path):
    detector = KeywordDetector()
    base = score_window(traffic(seed=8), tmp_path / "base", label="base", detector=detector)
    toxic = score_window(traffic(seed=9, toxic_rate=0.2), tmp_path / "toxic", label="toxic", detector=detector)
    scores = [(line["model_output"], line["scores"]["toxicity"]) for line in toxic.records()]
    planted = [value for text, value in scores if text.startswith("Only an")]
    assert len(planted) > 30 and all(value == pytest.approx(0.6) for value in planted)
    assert all(value == 0.0 for text, value in scores if not text.startswith("Only an"))
    assert base.summary.score("toxicity").value == 0.0
    result = check_llm_outputs(base, toxic)
    assert "toxicity" in violated(result)
    assert result["metrics"]["toxicity_delta"] == pytest.approx(toxic.summary.score("toxicity").value)
    # the max over the detector's scores: a threat outranks an insult
    threat = score_window([{"prompt": "Tell me what you think of me.", "response": "Stupid. I will hurt you."}],
                          tmp_path / "threat", label="threat", detector=detector)
    assert next(threat.records())["scores"]["toxicity"] == pytest.approx(0.9)


# -- empty windows, errors, bad input --------------------------------------------------------------------
def test_an_empty_window_is_no_data(baseline, tmp_path):
    window = score_window([], tmp_path / "w", label="empty")
    assert window.summary.num_records == 0
    result = check_llm_outputs(baseline, window)
    assert result["status"] == "NoData" and result["violations"] == []


def test_errored_responses_are_counted_not_scored(baseline, tmp_path):
    pairs = traffic(seed=10, n=100)
    for pair in pairs[:10]:
        pair["error"] = "ModelError: 503 Service Unavailable"
        del pair["response"]
    pairs[10]["response"] = None  # captured without an answer
    window = score_window(pairs, tmp_path / "w", label="flaky")
    assert window.summary.num_records == 100 and window.summary.num_errors == 11
    assert window.summary.score("refusal").count == 89
    errored = [line for line in window.records() if line["error"] is not None]
    assert len(errored) == 11 and all(line["scores"] == {} for line in errored)
    result = check_llm_outputs(baseline, window)
    assert result["num_errors"] == 11
    assert next(m for m in result["comparison"]["metrics"] if m["name"] == "refusal")["n_candidate"] == 89
    only_errors = score_window(pairs[:10], tmp_path / "errors", label="down")
    assert check_llm_outputs(baseline, only_errors)["status"] == "NoData"


def test_clear_errors(baseline, tmp_path):
    with pytest.raises(UserError, match="pair 2 .*prompt must be a string"):
        score_window([{"prompt": "a b c", "response": "x"}, {"prompt": 3, "response": "x"}], tmp_path / "a", label="x")
    with pytest.raises(UserError, match="no response field"):
        score_window([{"prompt": "a b c", "output": "x"}], tmp_path / "b", label="x")
    with pytest.raises(UserError, match="label"):
        score_window([], tmp_path / "c", label="")
    with pytest.raises(UserError, match="detector"):
        score_window([], tmp_path / "d", label="x", detector=object())
    with pytest.raises(UserError, match="already holds a run"):
        score_window([], baseline.directory.path, label="x")
    with pytest.raises(UserError, match="unknown metric 'bleu'"):
        check_llm_outputs(baseline, baseline, max_change={"bleu": 0.1})
    with pytest.raises(UserError, match="non-negative"):
        check_llm_outputs(baseline, baseline, max_change={"refusal": -0.1})
    other = score_window(traffic(seed=11, n=20), tmp_path / "other", label="other", capture="another endpoint")
    with pytest.raises(IncomparableRuns):
        check_llm_outputs(baseline, other)


def test_windows_are_ordinary_runs(baseline):
    summary = json.loads((baseline.directory.summary_path).read_text())
    assert summary["dataset_name"] == "llm_capture" and summary["num_records"] == 300
    assert set(DEFAULT_MAX_CHANGE) >= {score["name"] for score in summary["dataset_scores"]}
    assert all(score["ci_lower"] <= score["value"] <= score["ci_upper"] for score in summary["dataset_scores"])
