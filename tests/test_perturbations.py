"""Perturbations: exact behaviour at the extremes, rates within tolerance, and determinism."""
import json
import random

import numpy as np
import pytest

from fmeval import evaluate
from fmeval.algorithms.perturbations import (
    QWERTY_NEIGHBOURS, butter_finger, get_perturbation, random_upper_case, rng_for, whitespace_add_remove,
)
from fmeval.errors import UserError
from fmeval.model_runners.function import FunctionRunner

TEXT = "The quick brown fox jumps over the lazy dog, 42 times!"


def generator(seed=0):
    return np.random.default_rng(seed)


def test_butter_finger_extremes_keep_case_and_non_letters():
    assert butter_finger(0.0)(TEXT, generator()) == TEXT
    swapped = butter_finger(1.0)("Hello, World 7", generator())
    for before, after in zip("Hello, World 7", swapped):
        if before.lower() in QWERTY_NEIGHBOURS:
            assert after.lower() in QWERTY_NEIGHBOURS[before.lower()]
            assert after.isupper() == before.isupper()
        else:
            assert after == before


def test_butter_finger_uses_aws_fmevals_keyboard_table():
    # AWS fmeval 1.2, src/fmeval/transforms/semantic_perturbations.py: ButterFinger.QUERTY_KEY_APPROX
    assert QWERTY_NEIGHBOURS["q"] == "qwasedzx" and QWERTY_NEIGHBOURS["p"] == "plo['ik"
    assert QWERTY_NEIGHBOURS[" "] == " " and len(QWERTY_NEIGHBOURS) == 27
    drawn = {butter_finger(1.0)("q", generator(seed)) for seed in range(300)}
    assert drawn == set("qwasedzx")  # the key itself is among the candidates


def test_random_upper_case_truncates_the_count_as_aws_does():
    assert random_upper_case(1.0)("abc def", generator()) == "ABC DEF"
    out = random_upper_case(0.5)("abcdefghij", generator(3))
    assert sum(c.isupper() for c in out) == 5 and out.lower() == "abcdefghij"
    fifteen = "abcdefghijklmno"  # int(15 * 0.1) = 1 position, where rounding would give 2
    assert all(sum(c.isupper() for c in random_upper_case(0.1)(fifteen, generator(s))) == 1 for s in range(20))


def test_whitespace_extremes():
    assert whitespace_add_remove(1.0, 0.0)("a b  c", generator()) == "abc"
    assert whitespace_add_remove(0.0, 1.0)("ab c", generator()) == "a b  c "


AWS_TEXT = "A quick brown fox jumps over the lazy dog 10 times."


@pytest.mark.parametrize("perturbation, seed, expected", [
    # AWS fmeval 1.2's unit tests (test/unit/transforms/test_semantic_perturbations.py): one
    # np.random.default_rng(seed) drawn from for each output in turn, as AWS's perturb does
    (butter_finger(0.1), 3, ["Q qhick brown fox jumps ovtr che lazy dog 10 times.",
                             "A quick brown fox jumps oeer the lazy cog 10 times.",
                             "A qunck brown fpx jumps over the lazf dog 10 times."]),
    (butter_finger(0.2), 10, ["A qmyck brown fmr jumps over the mazy dot 10 timvs.",
                              "A quick briwn fox uumps oveg tke lavy bog 10 clmes."]),
    (random_upper_case(0.1), 3, ["A quIck BRoWn fox jumps over the lazy Dog 10 times.",
                                 "A quIck brown fOx jumPs Over thE lazy dog 10 times.",
                                 "A quiCk brown fox jUmpS over the lazy dog 10 Times."]),
    (random_upper_case(0.2), 10, ["A quick bRoWn fox jumps OvEr the lazY Dog 10 timeS.",
                                  "A qUick brOwn fOx jumps oveR the laZY doG 10 TImes."]),
    (whitespace_add_remove(0.1, 0.05), 3, ["A quick brown fox jum ps overthe lazy dog 10 times.",
                                           "A quick brown fox jumpsover the lazy dog 10 times.",
                                           "A q uick brownfox jumps over the lazy dog 10 times."]),
    (whitespace_add_remove(0.2, 0.4), 10, [
        "A qu ic k brow n fox  j um ps  ov e r th e  la z y  d og 1 0  tim es . ",
        "A quick br ow n fox  ju m p s over t h ela z y d og10  tim e s ."]),
])
def test_a_generator_seeded_as_aws_seeds_its_own_gives_aws_fmevals_strings(perturbation, seed, expected):
    rng = generator(seed)
    assert [perturbation(AWS_TEXT, rng) for _ in expected] == expected


def test_rates_match_their_parameters():
    rng = generator(11)
    letters = "".join(random.Random(11).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(50_000))
    changed = sum(a != b for a, b in zip(letters, butter_finger(0.1)(letters, rng)))
    # a draw picks the key itself with its share of the candidates (1 of 8 for q, ...)
    keep = sum(QWERTY_NEIGHBOURS[c].count(c) / len(QWERTY_NEIGHBOURS[c]) for c in letters) / len(letters)
    assert changed / len(letters) == pytest.approx(0.1 * (1 - keep), abs=0.006)
    words = " ".join(["word"] * 20_000)
    out = whitespace_add_remove(0.1, 0.05)(words, rng)
    spaces_in, spaces_out = words.count(" "), out.count(" ")
    non_space = len(words) - spaces_in
    # expected spaces: kept originals (90%) plus added ones (5% of non-space characters)
    assert spaces_out == pytest.approx(0.9 * spaces_in + 0.05 * non_space, rel=0.03)


def test_rng_depends_only_on_seed_record_perturbation_and_index():
    draw = lambda *key: float(rng_for(*key).random())  # noqa: E731
    assert draw(1, "r", "p", 0) == draw(1, "r", "p", 0)
    assert len({draw(1, "r", "p", 0), draw(2, "r", "p", 0), draw(1, "s", "p", 0), draw(1, "r", "q", 0),
                draw(1, "r", "p", 1)}) == 5


def test_nlpaug_augmenter_is_deterministic_per_seed():
    perturb = get_perturbation("nlpaug:char.RandomCharAug", {"action": "swap", "aug_char_p": 0.3})
    first = perturb(TEXT, rng_for(0, "x", "n", 0))
    assert first == perturb(TEXT, rng_for(0, "x", "n", 0)) and first != TEXT
    assert sorted(first.replace(" ", "")) == sorted(TEXT.replace(" ", ""))  # swaps keep the characters
    with pytest.raises(UserError, match="unknown perturbation"):
        get_perturbation("typo_storm")
    with pytest.raises(UserError, match=r"within \[0, 1\]"):
        get_perturbation("butter_finger", {"probability": 2})


def test_same_seed_different_batch_sizes_and_chunks_give_identical_perturbations(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"model_input": f"question number {i} about cats", "target_output": "cats"})
                            + "\n" for i in range(23)))

    def run(name, batch_size, chunk_size):
        echo = FunctionRunner(lambda prompts: list(prompts), batched=True, batch_size=batch_size)
        evaluate(evaluation="qa_accuracy_semantic_robustness", dataset=data, model=echo, chunk_size=chunk_size,
                 evaluation_options={"metrics": ["exact_match_score", "delta_exact_match_score"], "perturbation_seed": 5},
                 output=tmp_path / name, cache=False, progress=False)
        lines = [json.loads(l) for l in (tmp_path / name / "records.jsonl").read_text().splitlines()]
        return {line["record_id"]: line["perturbed_model_outputs"] for line in lines}

    reference = run("a", batch_size=1, chunk_size=1)
    assert reference == run("b", batch_size=7, chunk_size=5) == run("c", batch_size=64, chunk_size=256)
    assert all(len(set(outputs)) > 1 for outputs in reference.values())  # the perturbations really differ
