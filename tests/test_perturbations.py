"""Perturbations: exact behaviour at the extremes, rates within tolerance, and determinism."""
import json
import random

import pytest

from fmeval import evaluate
from fmeval.algorithms.perturbations import (
    QWERTY_NEIGHBOURS, butter_finger, get_perturbation, random_upper_case, rng_for, whitespace_add_remove,
)
from fmeval.errors import UserError
from fmeval.model_runners.function import FunctionRunner

TEXT = "The quick brown fox jumps over the lazy dog, 42 times!"


def test_butter_finger_extremes_keep_case_and_non_letters():
    assert butter_finger(0.0)(TEXT, random.Random(0)) == TEXT
    swapped = butter_finger(1.0)("Hello, World 7", random.Random(0))
    for before, after in zip("Hello, World 7", swapped):
        if before.lower() in QWERTY_NEIGHBOURS:
            assert after.lower() in QWERTY_NEIGHBOURS[before.lower()]
            assert after.isupper() == before.isupper()
        else:
            assert after == before


def test_random_upper_case_counts_positions():
    assert random_upper_case(1.0)("abc def", random.Random(0)) == "ABC DEF"
    out = random_upper_case(0.5)("abcdefghij", random.Random(3))
    assert sum(c.isupper() for c in out) == 5 and out.lower() == "abcdefghij"


def test_whitespace_extremes():
    assert whitespace_add_remove(1.0, 0.0)("a b  c", random.Random(0)) == "abc"
    assert whitespace_add_remove(0.0, 1.0)("ab c", random.Random(0)) == "a b  c "


def test_fixed_seed_gives_fixed_strings():
    # Python's Mersenne Twister is the same on every platform, so these strings are too.
    rng = lambda: rng_for(0, "record-1", "p", 0)  # noqa: E731
    # e->f, o->p, w->a, d->w: each a QWERTY neighbour
    assert butter_finger(0.3)("hello world", rng()) == "hfllp aorlw"
    # round(11 * 0.3) = 3 positions: o, the space, l
    assert random_upper_case(0.3)("hello world", rng()) == "hellO worLd"
    assert whitespace_add_remove(0.5, 0.3)("a quick brown fox", rng()) == "aquic k  br own  fox "


def test_rates_match_their_parameters():
    rng = random.Random(11)
    letters = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(50_000))
    changed = sum(a != b for a, b in zip(letters, butter_finger(0.1)(letters, rng)))
    assert changed / len(letters) == pytest.approx(0.1, abs=0.006)
    words = " ".join(["word"] * 20_000)
    out = whitespace_add_remove(0.1, 0.05)(words, rng)
    spaces_in, spaces_out = words.count(" "), out.count(" ")
    non_space = len(words) - spaces_in
    # expected spaces: kept originals (90%) plus added ones (5% of non-space characters)
    assert spaces_out == pytest.approx(0.9 * spaces_in + 0.05 * non_space, rel=0.03)


def test_rng_depends_only_on_seed_record_perturbation_and_index():
    draw = lambda *key: rng_for(*key).random()  # noqa: E731
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
