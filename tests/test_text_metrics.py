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
@pytest.mark.parametrize("normalization", ["aws", "squad"])
def test_both_normalizations_agree_on_plain_text(text, expected, normalization):
    assert tm.normalizer(normalization)(text) == expected


# Values computed with AWS fmeval 1.2.3's own functions (eval_algorithms/qa_accuracy.py: _f1_score,
# _precision, _quasi_exact_match_score; factual_knowledge.py: _quasi_exact_inclusion_score). Their
# normalisation splits on plain spaces only, so an article glued to a newline survives, a non-breaking
# space joins words, and an article after non-ASCII punctuation stays. Checked against those
# functions on 80,000 random string pairs: no difference in "aws" mode.
AWS_1_2_3 = [
    # (output, target, f1, precision, quasi_exact)
    ("London\n\nThe capital of England", "London", 1 / 3, 1 / 5, 0.0),
    ("Paris\xa0France", "paris france", 1.0, 1.0, 0.0),
    ("it is ’the answer", "’the answer", 2 / 3, 1 / 2, 0.0),
    ("The Paris!", "paris", 1.0, 1.0, 1.0),
    ("\tthe cat\n", "cat", 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize(("output", "target", "f1", "precision", "quasi_exact"), AWS_1_2_3)
def test_default_normalization_matches_aws_fmeval(output, target, f1, precision, quasi_exact):
    assert tm.f1_over_words(output, target) == pytest.approx(f1)
    assert tm.precision_over_words(output, target) == pytest.approx(precision)
    assert tm.quasi_exact_match(output, target) == quasi_exact


def test_squad_normalization_is_the_cleaner_option():
    assert tm.f1_over_words("London\n\nThe capital of England", "London", normalization="squad") == pytest.approx(0.4)
    assert tm.quasi_exact_match("Paris\xa0France", "paris france", normalization="squad") == 1.0
    assert tm.normalize_squad("it is ’the answer") == "it is ’ answer"  # the glued article goes
    assert tm.factual_inclusion_quasi_exact("London\nthe city", "London city") == 0.0
    assert tm.factual_inclusion_quasi_exact("London\nthe city", "London city", normalization="squad") == 1.0


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
