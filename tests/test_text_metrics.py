"""Every text metric against values worked out by hand."""
import pytest

from fmeval.algorithms import text_metrics as tm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Quick, brown fox!", "quick brown fox"),
        ("An apple a day", "apple day"),
        ("theater another", "theater another"),  # articles only as whole words
        ("  U.S.A.  ", "usa"),
        ("", ""),
        ("The", ""),
    ],
)
def test_normalize_text(text, expected):
    assert tm.normalize_text(text) == expected


def test_factual_inclusion_ignores_case_only():
    assert tm.factual_inclusion("The capital is PARIS.", "Paris") == 1.0
    assert tm.factual_inclusion("The capital is Pari", "Paris") == 0.0
    # punctuation still matters for the plain score, not for the quasi-exact one
    assert tm.factual_inclusion("It is the usa", "U.S.A.") == 0.0
    assert tm.factual_inclusion_quasi_exact("It is the usa", "U.S.A.") == 1.0
    assert tm.factual_inclusion_quasi_exact("", "Paris") == 0.0


def test_exact_and_quasi_exact_match():
    assert tm.exact_match(" Paris \n", "Paris") == 1.0
    assert tm.exact_match("paris", "Paris") == 0.0
    assert tm.quasi_exact_match("The Paris!", "paris") == 1.0
    assert tm.quasi_exact_match("Paris, France", "Paris") == 0.0
    assert tm.exact_match("", "Paris") == 0.0


def test_word_overlap_by_hand():
    # output words {cat, sat, on, mat}; target words {cat, on, mat}
    output, target = "The cat sat on the mat.", "a cat on a mat"
    assert tm.precision_over_words(output, target) == pytest.approx(3 / 4)
    assert tm.recall_over_words(output, target) == pytest.approx(1.0)
    assert tm.f1_over_words(output, target) == pytest.approx(2 * 0.75 * 1 / 1.75)


def test_word_overlap_counts_distinct_words_like_aws_fmeval():
    assert tm.precision_over_words("paris paris paris", "Paris") == 1.0
    assert tm.recall_over_words("paris", "paris paris") == 1.0


def test_word_overlap_edge_cases():
    assert tm.f1_over_words("", "Paris") == 0.0
    assert tm.precision_over_words("", "Paris") == 0.0
    assert tm.recall_over_words("Paris", "") == 0.0
    assert tm.recall_over_words("Paris", "the") == 0.0  # target is only an article
    assert tm.f1_over_words("London", "Paris") == 0.0
