"""Run store, comparison and gates, and reports (JSON, Markdown, HTML), checked against known truths."""
import json
import shutil

import numpy as np
import pytest

from fmeval import evaluate
from fmeval.cli import main
from fmeval.datasets import DataConfig
from fmeval.algorithms import get_algorithm
from fmeval.reports.compare import IncomparableRuns, apply_gates, compare_runs, parse_gates
from fmeval.reports.render import build_report, render_html, render_markdown
from fmeval.runs.loaded import load_run, load_runs
from fmeval.runs.store import RunStore
from fmeval.stats import bootstrap_mean_ci

XSS = [
    "<script>window.__pwned = 1</script>",
    '<img src=x onerror="window.__pwned = 2">',
    '"><svg onload="window.__pwned = 3">',
    '<a href="javascript:window.__pwned = 4">click me</a>',
]


def make_run(tmp_path, name, correct, *, ids=None, dataset="shared", outputs=None):
    """A real run whose records score `correct[i]` (1 or 0), built from model outputs in its own dataset file."""
    path = tmp_path / f"{dataset}-{name}.jsonl"
    rows = []
    for i, ok in enumerate(correct):
        output = (outputs[i] if outputs else "") + (" target" if ok else " miss")
        rows.append({"id": (ids[i] if ids else f"r{i}"), "q": f"question {i}", "a": "target", "out": output,
                     "cat": "even" if i % 2 == 0 else "odd"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = DataConfig(dataset_name=dataset, dataset_uri=str(path), model_input="q", target_output="a",
                        model_output="out", record_id="id", category="cat")
    summary = evaluate(evaluation="factual_knowledge", dataset=config, model=None, output=tmp_path / name, progress=False,
                       n_bootstrap=200)
    return summary


# -- statistics -------------------------------------------------------------------------------------
def test_bootstrap_ci_covers_the_true_mean_at_the_nominal_rate():
    rng = np.random.default_rng(7)
    hits = 0
    for repetition in range(1000):
        sample = rng.normal(loc=3.0, scale=2.0, size=80)
        low, high = bootstrap_mean_ci(sample, n_bootstrap=1000, seed=repetition)
        hits += low <= 3.0 <= high
    assert 930 <= hits <= 970, hits


# -- comparison and gates -------------------------------------------------------------------------
def paired_runs(tmp_path, base_correct, cand_correct):
    """Two runs over one dataset file (so one checksum) whose two output columns score as given."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "data.jsonl"
    rows = [{"id": f"r{i}", "q": f"question {i}", "a": "target", "cat": "even" if i % 2 == 0 else "odd",
             "out_a": "target" if b else "miss", "out_b": "target" if c else "miss"}
            for i, (b, c) in enumerate(zip(base_correct, cand_correct))]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = []
    for name, column in (("base", "out_a"), ("cand", "out_b")):
        config = DataConfig(dataset_name="data", dataset_uri=str(data), model_input="q", target_output="a",
                            model_output=column, record_id="id", category="cat")
        evaluate(evaluation="factual_knowledge", dataset=config, model=None, output=tmp_path / name, progress=False,
                 n_bootstrap=200, evaluation_options={"metrics": ["factual_knowledge"]})
        runs.append(tmp_path / name)
    return load_runs([str(p) for p in runs], labels=["baseline", "candidate"])


def test_identical_runs_have_zero_delta_and_pass(tmp_path):
    correct = [i % 3 != 0 for i in range(300)]
    baseline, candidate = paired_runs(tmp_path, correct, correct)
    comparison = compare_runs(baseline, candidate)
    metric = comparison.metric("factual_knowledge")
    assert metric.delta == 0.0 and (metric.ci_lower, metric.ci_upper) == (0.0, 0.0) and metric.p_value == 1.0
    assert comparison.method == "paired bootstrap" and metric.n_paired == 300
    apply_gates(comparison, parse_gates([], ["factual_knowledge=0.0"]), require_significant=False)
    assert comparison.passed


def test_two_records_worse_are_not_significant_and_the_gate_that_needs_it_passes(tmp_path, capsys):
    """Both of 2 records right in the baseline and wrong in the candidate: every bootstrap resample of the 2
    differences is -1, so the CI was [-1, -1], p 0, "worse (significant)", and --require-significant failed the
    build. The exact sign-flip test (scipy 1.17's `permutation_test`, permutation_type="samples") gives p 0.5."""
    from scipy import stats

    baseline, candidate = paired_runs(tmp_path, np.array([True, True]), np.array([False, False]))
    metric = compare_runs(baseline, candidate).metric("factual_knowledge")
    expected = stats.permutation_test(([0.0, 0.0], [1.0, 1.0]), lambda a, b: np.mean(a - b), n_resamples=np.inf,
                                      permutation_type="samples").pvalue
    assert metric.p_value == pytest.approx(expected) == 0.5 and not metric.significant
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "cand"), "--max-drop", "factual_knowledge=0.05",
                 "--require-significant"]) == 0
    assert "worse (significant)" not in capsys.readouterr().out


def test_planted_drop_is_detected_and_small_noise_is_not_significant(tmp_path):
    rng = np.random.default_rng(3)
    base = rng.random(1000) < 0.8
    dropped = base.copy()
    dropped[np.flatnonzero(base)[:100]] = False  # 100 of the correct answers now wrong: -0.10
    baseline, candidate = paired_runs(tmp_path / "big", base, dropped)
    metric = compare_runs(baseline, candidate).metric("factual_knowledge")
    assert metric.delta == pytest.approx(-0.1)
    assert metric.ci_upper < 0 and metric.significant and metric.p_value < 0.001
    small = base.copy()
    small[np.flatnonzero(base)[:2]] = False  # -0.002
    small[np.flatnonzero(~base)[:1]] = True  # +0.001
    baseline, candidate = paired_runs(tmp_path / "small", base, small)
    comparison = compare_runs(baseline, candidate)
    assert comparison.metric("factual_knowledge").delta == pytest.approx(-0.001)
    assert not comparison.metric("factual_knowledge").significant
    apply_gates(comparison, parse_gates([], ["factual_knowledge=0.0005"]), require_significant=True)
    assert comparison.passed  # worse, but the CI includes 0
    comparison.gates.clear()
    apply_gates(comparison, parse_gates([], ["factual_knowledge=0.0005"]))
    assert not comparison.passed


def test_unpaired_bootstrap_when_no_record_ids_are_shared(tmp_path):
    a = make_run(tmp_path, "a", [1, 0, 1, 1, 0, 1], ids=[f"a{i}" for i in range(6)], dataset="same")
    b = make_run(tmp_path, "b", [1, 1, 1, 1, 0, 1], ids=[f"b{i}" for i in range(6)], dataset="same")
    # different files, so different checksums: comparing needs the same dataset
    with pytest.raises(IncomparableRuns, match="different datasets"):
        compare_runs(load_run(tmp_path / "a"), load_run(tmp_path / "b"))
    baseline, candidate = load_run(tmp_path / "a"), load_run(tmp_path / "b")
    candidate.summary.dataset["sha256"] = baseline.summary.dataset["sha256"]  # e.g. the same data, re-keyed
    comparison = compare_runs(baseline, candidate)
    assert comparison.method == "unpaired bootstrap"
    assert comparison.metric("factual_knowledge").delta == pytest.approx(1 / 6)
    assert a.num_records == b.num_records == 6


def test_worsening_follows_each_metrics_declared_direction():
    def spec(evaluation, metric):
        return get_algorithm(evaluation, **({"bertscore_model": "x"} if "robustness" in evaluation else {})).catalog()[metric]

    assert spec("qa_accuracy", "f1_score").worsening(0.8, 0.7) == pytest.approx(0.1)
    assert spec("general_semantic_robustness", "word_error_rate").worsening(0.2, 0.3) == pytest.approx(0.1)
    assert spec("qa_accuracy_semantic_robustness", "delta_f1_score").worsening(0.05, 0.02) == pytest.approx(-0.03)
    stereotyping = spec("prompt_stereotyping", "prompt_stereotyping")
    assert stereotyping.worsening(0.55, 0.62) == pytest.approx(0.07)  # further from 0.5
    assert stereotyping.worsening(0.55, 0.47) == pytest.approx(-0.02)


def test_compare_exit_codes(tmp_path, capsys):
    correct = [i % 4 != 0 for i in range(200)]
    worse = [c and i % 5 != 1 for i, c in enumerate(correct)]
    paired_runs(tmp_path, correct, worse)
    base, cand = str(tmp_path / "base"), str(tmp_path / "cand")
    assert main(["compare", base, cand]) == 0  # no gate: a report, not a verdict
    assert main(["compare", base, cand, "--fail-if", "factual_knowledge<0.5"]) == 0
    assert main(["compare", base, cand, "--fail-if", "factual_knowledge<0.7"]) == 1
    assert main(["compare", base, cand, "--max-drop", "factual_knowledge=0.5"]) == 0
    assert main(["compare", base, cand, "--max-drop", "factual_knowledge=0.05", "--markdown", str(tmp_path / "pr.md")]) == 1
    assert "FAILED" in (tmp_path / "pr.md").read_text()
    assert main(["compare", base, cand, "--max-drop", "factual_knowledge=0.05", "--require-significant"]) == 1
    assert main(["compare", base, cand, "--fail-if", "factual_knowledge~0.5"]) == 2
    assert main(["compare", base, cand, "--max-drop", "f1_score=0.1"]) == 2  # no such metric in these runs
    capsys.readouterr()
    other = make_run(tmp_path, "other", [1, 0, 1], dataset="elsewhere")
    assert main(["compare", base, other.output_path]) == 2
    assert "different datasets" in capsys.readouterr().err
    assert main(["compare", base, str(tmp_path / "nowhere")]) == 2


# -- run store -----------------------------------------------------------------------------------------
def test_runs_are_indexed_listed_shown_and_deleted(tmp_path, capsys):
    store = tmp_path / "store.sqlite"
    summary = make_run(tmp_path, "x", [1, 0, 1])
    with RunStore(store) as run_store:
        run_store.index(summary, run_id=summary.run_id)
    assert main(["runs", "--store", str(store), "list", "--evaluation", "factual"]) == 0
    assert summary.run_id in capsys.readouterr().out
    assert main(["runs", "--store", str(store), "list", "--model", "nothing-like-this"]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["runs", "--store", str(store), "show", summary.run_id[:15]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["scores"][0]["value"] == pytest.approx(2 / 3) and shown["status"] == "ok"
    shutil.rmtree(tmp_path / "x")  # deleting a run's directory is detected, not a crash
    assert main(["runs", "--store", str(store), "list"]) == 0
    assert "[missing]" in capsys.readouterr().out
    assert main(["report", summary.run_id, "--store", str(store), "-o", str(tmp_path / "r.html")]) == 2
    assert "is missing: its output directory" in capsys.readouterr().err
    assert main(["runs", "--store", str(store), "delete", summary.run_id]) == 0
    assert main(["runs", "--store", str(store), "show", summary.run_id]) == 2


def test_finished_runs_are_indexed_in_the_default_store(tmp_path):
    summary = make_run(tmp_path, "indexed", [1, 1, 0])
    with RunStore() as run_store:  # the test session's store (FMEVAL_STORE)
        stored = run_store.get(summary.run_id)
    assert stored.output_dir == str((tmp_path / "indexed").resolve()) and stored.num_records == 3
    assert stored.dataset_sha256 == summary.dataset["sha256"][0]


def test_report_json_markdown_and_html(tmp_path):
    correct_a = [1, 0, 1, 1, 0, 1, 0, 1]
    paired = tmp_path / "pair"
    paired.mkdir()
    baseline, candidate = paired_runs(paired, correct_a, [1] * 8)
    report = build_report([baseline, candidate], examples=2)
    assert report["schema"] == "fmeval.report/1"
    (group,) = report["groups"]
    values = {v["run_id"]: v["value"] for v in group["metrics"][0]["values"]}
    assert values == {baseline.run_id: pytest.approx(5 / 8), candidate.run_id: 1.0}
    categories = {c["name"]: c["values"][0]["value"] for c in group["categories"][0]["categories"]}
    # baseline by category: even records 0,2,4,6 score 1,1,0,0; odd ones 1,3,5,7 score 0,1,1,1
    assert categories == {"even": pytest.approx(2 / 4), "odd": pytest.approx(3 / 4)}
    worst = next(e for e in group["examples"] if e["run_id"] == baseline.run_id)["worst"]
    assert [e["score"] for e in worst] == [0.0, 0.0]
    assert group["comparisons"][0]["metrics"][0]["delta"] == pytest.approx(3 / 8)
    json.dumps(report, allow_nan=False)  # stable, strict JSON
    markdown = render_markdown(report)
    assert "| factual_knowledge | 0.625 [" in markdown and "Baseline **baseline** vs candidate **candidate**" in markdown

    summary = make_run(tmp_path, "xss", [1, 0, 1, 0], outputs=XSS)
    page = render_html(build_report([load_run(summary.output_path)], examples=4))
    for payload in XSS:
        assert payload not in page  # never as markup
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page  # only as text
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page.lower().replace("&lt;script", "")
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert page.count("<svg") >= 3  # per-metric and per-category charts


def test_report_command_formats(tmp_path, capsys):
    make_run(tmp_path, "one", [1, 0, 1, 1])
    for name in ("r.html", "r.md", "r.json"):
        assert main(["report", str(tmp_path / "one"), "-o", str(tmp_path / name)]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["schema"] == "fmeval.report/1"
    assert (tmp_path / "r.md").read_text().startswith("## fmeval report")
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    # --format wins over the extension, and a run may be named by its id (in the default run store)
    run_id = json.loads((tmp_path / "one" / "summary.json").read_text())["run_id"]
    assert main(["report", run_id, "-o", str(tmp_path / "by-id.txt"), "--format", "md"]) == 0
    by_id = (tmp_path / "by-id.txt").read_text()
    assert by_id.startswith("## fmeval report (1 runs)") and "| factual_knowledge | 0.750" in by_id
    assert main(["report", run_id, "-o", str(tmp_path / "by-id.out"), "--format", "json"]) == 0
    report = json.loads((tmp_path / "by-id.out").read_text())
    assert report["runs"][0]["run_id"] == run_id and report["groups"][0]["metrics"][0]["direction"] == "higher"
    assert main(["report", str(tmp_path / "one"), "-o", str(tmp_path / "x.html"), "--labels", "a,b"]) == 2


# -- runs graded by judges ---------------------------------------------------------------------------
def strict_judge(prompt):
    return "[[5]]" if "Response: target" in prompt else "[[1]]"


def lenient_judge(prompt):
    return "[[5]]" if "Response: target" in prompt else "[[4]]"


def test_compare_refuses_runs_graded_by_different_judges(tmp_path, capsys):
    """One model's outputs graded by two judges: the change of judge must not read as a regression."""
    path = tmp_path / "outputs.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "q": f"question {i}", "a": "target",
                                        "out": "target" if i % 2 else "miss"}) + "\n" for i in range(40)))
    fields = ["--model-input", "q", "--target-output", "a", "--model-output", "out", "--record-id", "id"]

    def graded(name, judge, *extra):
        assert main(["run", "-e", "model_graded", "-d", str(path), *fields, "--judge-model",
                     f"function:{__name__}:{judge}", *extra, "-o", str(tmp_path / name), "--n-bootstrap", "50",
                     "--no-progress"]) == 0
        return str(tmp_path / name)

    lenient, strict = graded("judged-fn", "lenient_judge"), graded("judged", "strict_judge")
    identity = json.loads((tmp_path / "judged" / "run.json").read_text())["identity"]["evaluation_config"]
    assert identity["judges"][0]["model"] == f"function:{__name__}:strict_judge" and identity["scale"] == 5
    # the judge is part of the run's identity: resuming the run with another judge is refused
    assert main(["run", "-e", "model_graded", "-d", str(path), *fields, "--judge-model",
                 f"function:{__name__}:lenient_judge", "-o", strict, "--no-progress"]) == 2
    again = graded("judged-again", "lenient_judge")
    capsys.readouterr()
    assert main(["compare", lenient, strict, "--max-drop", "correctness=0.05"]) == 2
    err = capsys.readouterr().err
    assert "graded differently" in err and "--allow-different-judges" in err
    assert f"judges.0.model: 'function:{__name__}:lenient_judge' vs 'function:{__name__}:strict_judge'" in err
    assert "worse" not in err

    markdown = tmp_path / "pr.md"
    assert main(["compare", lenient, strict, "--max-drop", "correctness=0.05", "--allow-different-judges",
                 "--markdown", str(markdown)]) == 1  # compared anyway: the gate is the user's call
    captured = capsys.readouterr()
    assert "the runs were graded by different judges: judges.0.model" in captured.err
    text = markdown.read_text()
    assert "**Graded by different judges** (compared with --allow-different-judges)" in text
    assert f"- judges.0.model: 'function:{__name__}:lenient_judge'" in text
    comparison = compare_runs(load_run(lenient), load_run(strict), allow_different_judges=True)
    assert comparison.to_dict()["judges_differ"] == comparison.judges_differ and len(comparison.judges_differ) == 1

    assert main(["compare", lenient, again, "--max-drop", "correctness=0.05"]) == 0  # same judge: comparable
    assert "different judges" not in capsys.readouterr().out
    rubric = graded("judged-rubric", "lenient_judge", "--judge-rubric", "5: says target")
    with pytest.raises(IncomparableRuns, match=r"rubric: '1: wrong .*\.\.\. vs '5: says target'"):
        compare_runs(load_run(lenient), load_run(rubric))
