"""Text explanations (Clarify's NLP explainability): spaCy units, KernelSHAP over them, and
`fmeval analyze` with a text_config, for a scikit-learn text model and a language model."""
import json

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from fmeval.bias.analyze import analyze
from fmeval.errors import UserError
from fmeval.explain.kernel_shap import row_seed
from fmeval.explain.text import compose, explain_row, segment, text_config

TEXT = "  The soup was excellent. Service was slow!  We waited long.\n\nWould we come back? Yes."


@pytest.mark.parametrize("granularity, expected", [
    ("token", ["The", "soup", "was", "excellent", ".", "Service", "was", "slow", "!", "We", "waited", "long", ".",
               "Would", "we", "come", "back", "?", "Yes", "."]),
    ("sentence", ["The soup was excellent.", "Service was slow!", "We waited long.", "Would we come back?", "Yes."]),
    ("paragraph", ["The soup was excellent. Service was slow!  We waited long.", "Would we come back? Yes."]),
])
def test_units_rebuild_the_text_and_masking_follows_the_baseline(granularity, expected):
    units = segment(TEXT, granularity=granularity, language="en")
    assert [u.text for u in units] == expected
    assert all(TEXT[u.start:u.start + len(u.text)] == u.text for u in units)
    prefix = TEXT[: units[0].start]
    assert compose(units, [True] * len(units), "", prefix) == TEXT
    if granularity == "sentence":
        kept = [False, True, False, True, False]
        assert compose(units, kept, "<UNK>", prefix) == "  <UNK> Service was slow!  <UNK>\n\nWould we come back? <UNK>"
        assert compose(units, kept, "", prefix) == "  Service was slow!\n\nWould we come back?"


def test_token_removal_keeps_words_apart():
    units = segment("Great food. The end", granularity="token", language="en")
    # dropping "." must not glue "food" to "The"
    assert compose(units, [True, True, False, True, True], "") == "Great food The end"


def test_text_config_keys_follow_clarify():
    assert text_config({"granularity": "sentence", "language": "multi-language"}) == {
        "granularity": "sentence", "language": "xx", "max_top_tokens": 50}
    assert text_config({"language": "fr"})["language"] == "fr"
    for bad, message in [({"granularity": "word"}, "granularity must be one of token, sentence, paragraph"),
                         ({"language": "klingon"}, "'klingon' is not a language Clarify names"),
                         ({"granularity": "token", "lang": "en"}, r"unknown key\(s\) lang"),
                         ({"max_top_tokens": 0}, "max_top_tokens must be a positive integer")]:
        with pytest.raises(UserError, match=message):
            text_config(bad)
    french = segment("Le service était lent. Nous reviendrons !", granularity="sentence", language="fr")
    assert [u.text for u in french] == ["Le service était lent.", "Nous reviendrons !"]


def planted(rows):
    """Depends on the word "excellent" (strongly) and "slow" (weakly, negatively), nothing else."""
    texts = [row[0] for row in rows]
    return np.array([[2.0 * ("excellent" in t) - 0.5 * ("slow" in t) + 0.1] for t in texts])


def test_planted_word_ranks_first_and_values_add_up():
    explanation = explain_row(planted, [TEXT], is_text=[True], baseline=["<UNK>"], language="en", seed=3)
    units, values = explanation.per_feature()[0]
    ranked = [units[i].text for i in np.argsort(-np.abs(values[0]))]
    assert ranked[:2] == ["excellent", "slow"]
    assert values[0][[u.text for u in units].index("excellent")] == pytest.approx(2.0, abs=1e-6)
    masked = compose(units, [False] * len(units), "<UNK>", TEXT[: units[0].start])
    full, empty = planted([[TEXT]])[0, 0], planted([[masked]])[0, 0]
    assert values.sum() == pytest.approx(full - empty, abs=1e-6)  # additivity
    assert explanation.shap.masked_output[0] == pytest.approx(empty, abs=1e-12)


def test_agreement_with_shap_kernel_explainer_on_the_same_masking():
    """A model with interactions, so the sampled estimate depends on every detail of the masking."""
    text = "a fine red wine that was far too sweet for us"
    words = text.split()

    def model(texts):
        return np.array([[len(t) / 10 + 3 * ("red" in t and "wine" in t) - 2 * ("sweet" in t) * ("too" in t)]
                         for t in texts])

    explanation = explain_row(lambda rows: model([r[0] for r in rows]), [text], is_text=[True], baseline=[""],
                              language="en", num_samples=300, seed=11, item=4)

    def masked(coalitions):
        return model([" ".join(w for w, keep in zip(words, row) if keep > 0.5) for row in coalitions])

    explainer = shap.KernelExplainer(masked, np.zeros((1, len(words))))
    np.random.seed(row_seed(11, 4))
    expected = np.asarray(explainer.explain(np.ones((1, len(words))), nsamples=300)).T
    np.testing.assert_allclose(explanation.shap.values, expected, atol=1e-9)


REVIEWS = [
    ("excellent meal and friendly staff", 5, 1), ("excellent pasta , slow service", 3, 1),
    ("cold food and rude staff", 1, 0), ("slow service , cold soup", 2, 0), ("the wine was excellent", 4, 1),
    ("rude waiter , never again", 1, 0), ("excellent value , will return", 5, 1), ("bland and slow", 2, 0),
    ("friendly staff , excellent dessert", 4, 1), ("noisy room and rude host", 2, 0),
] * 3


@pytest.fixture(scope="module")
def reviews():
    frame = pd.DataFrame(REVIEWS, columns=["review", "stars", "liked"])
    frame.loc[0, "review"] = "excellent <script>alert(1)</script> meal"
    frame["id"] = [f"r{i}" for i in range(len(frame))]
    return frame


def test_analyze_explains_a_text_and_a_number_with_clarify_outputs(reviews, tmp_path):
    columns = ColumnTransformer([("words", CountVectorizer(), "review"), ("stars", "passthrough", ["stars"])])
    model = make_pipeline(columns, LogisticRegression(C=10, max_iter=1000)).fit(reviews[["review", "stars"]],
                                                                                   reviews.liked)
    config = {"dataset_type": "text/csv", "label": "liked", "joinsource_name_or_index": "id",
              "methods": {"shap": {"baseline": [["<UNK>", 3]], "num_samples": 200, "seed": 1,
                                   "text_config": {"granularity": "token", "language": "english",
                                                   "max_top_tokens": 3}}}}
    sample = reviews.head(4)
    result = analyze(config, sample, tmp_path, model=model)
    block = result["explanations"]["kernel_shap"]["label0"]
    assert list(block["global_top_shap_text"]["review"])[0] == "excellent"
    lines = [json.loads(line) for line in (tmp_path / "explanations_shap" / "out.jsonl").read_text().splitlines()]
    assert [line["join_source_value"] for line in lines] == ["r0", "r1", "r2", "r3"]
    for line, (_, row) in zip(lines, sample.iterrows()):
        text, number = line["explanations"]
        assert text["data_type"] == "free_text" and number == {
            "feature_name": "stars", "data_type": "numerical", "attributions": [number["attributions"][0]]}
        total = sum(a["attribution"][0] for a in text["attributions"]) + number["attributions"][0]["attribution"][0]
        masked = pd.DataFrame({"review": [" ".join(["<UNK>"] * len(text["attributions"]))], "stars": [3]})
        full = model.predict_proba(pd.DataFrame([row[["review", "stars"]]]))[0, 1]
        assert total == pytest.approx(full - model.predict_proba(masked)[0, 1], abs=1e-6)
        assert [a["description"]["start_idx"] for a in text["attributions"]][:2] == [0, len(text["attributions"][0]
                                                                                          ["description"]["partial_text"]) + 1]
    page = (tmp_path / "text_heatmap.html").read_text()
    assert "&lt;" in page and "alert(1)" in page and "<script>" not in page
    assert block["global_shap_values"]["review"] > 0 and set(block["global_shap_values"]) == {"review", "stars"}


def test_text_config_errors_are_clear(reviews, tmp_path):
    model = make_pipeline(CountVectorizer(), LogisticRegression()).fit(reviews.review, reviews.liked)
    config = {"label": "liked", "excluded_columns": ["id", "stars"],
              "methods": {"shap": {"text_config": {"granularity": "words"}}}}
    with pytest.raises(UserError, match="granularity must be one of"):
        analyze(config, reviews, tmp_path, model=model)
    config["methods"]["shap"] = {"baseline": ["<UNK>"], "text_config": {}}
    with pytest.raises(UserError, match=r"baseline for text must be one row with a value per feature \(1\)"):
        analyze(config, reviews, tmp_path, model=model)


def test_a_language_model_explained_through_its_log_probability(tiny_llama_dir, tmp_path, monkeypatch):
    """Real forward passes of a tiny Llama: each sentence's share of log p(target | prompt)."""
    from fmeval.model_runners import load_runner

    monkeypatch.setenv("FMEVAL_RESPONSE_CACHE", str(tmp_path / "cache.sqlite"))
    frame = pd.DataFrame({"question": ["The capital of France is Paris. Water boils at one hundred degrees."],
                          "y": [1]})
    predictor = {"model": str(tiny_llama_dir), "prompt_template": "$feature Question: who wrote Hamlet? Answer:",
                 "score": "log_probability", "target": " William Shakespeare."}
    config = {"label": "y", "predictor": predictor,
              "methods": {"shap": {"text_config": {"granularity": "sentence"}, "baseline": [["<UNK>"]]}}}
    result = analyze(config, frame, tmp_path / "out")
    line = json.loads((tmp_path / "out" / "explanations_shap" / "out.jsonl").read_text())
    values = [a["attribution"][0] for a in line["explanations"][0]["attributions"]]
    assert len(values) == 2
    runner = load_runner(str(tiny_llama_dir))

    def score(text):
        prompt = predictor["prompt_template"].replace("$feature", text)
        both = runner.log_probability([prompt, prompt + predictor["target"]])
        return both[1].log_probability - both[0].log_probability

    full, masked = score(frame.question[0]), score("<UNK> <UNK>")
    assert sum(values) == pytest.approx(full - masked, abs=1e-4)  # float32 forward passes
    assert result["explanations"]["kernel_shap"]["label0"]["expected_value"] == pytest.approx(masked, abs=1e-4)
    assert abs(values[0]) > 0 and values[0] != pytest.approx(values[1])


def answers_positive_for_praise(prompt: str) -> str:
    return "Sentiment: positive" if "excellent" in prompt else "Sentiment: negative"


def test_a_language_model_explained_through_classification_accuracy(tmp_path):
    frame = pd.DataFrame({"review": ["the pasta was excellent but the room was loud"], "y": [1]})
    predictor = {"model": "function:tests.test_text_explain:answers_positive_for_praise",
                 "prompt_template": "Review: $feature\nSentiment:", "score": "classification_accuracy",
                 "valid_labels": ["positive", "negative"], "target": "positive"}
    config = {"label": "y", "predictor": predictor, "methods": {"shap": {"text_config": {"granularity": "token"}}}}
    analyze(config, frame, tmp_path)
    line = json.loads((tmp_path / "explanations_shap" / "out.jsonl").read_text())
    attributions = {a["description"]["partial_text"]: a["attribution"][0] for a in line["explanations"][0]["attributions"]}
    assert attributions.pop("excellent") == pytest.approx(1.0, abs=1e-6)  # right only with "excellent" kept
    assert all(abs(v) < 1e-6 for v in attributions.values())
