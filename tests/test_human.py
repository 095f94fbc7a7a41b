"""Human evaluation: jobs from runs, balanced assignment, the raters' web app in a real browser
(two raters, a server killed mid-job, tokens, CSRF, XSS; a refused save that keeps the answers,
the reference answer, ranked outputs side by side), results as a run with agreement, a judge
against the humans."""
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fmeval import evaluate
from fmeval.cli import main
from fmeval.datasets import DataConfig
from fmeval.errors import UserError
from fmeval.human.job import Job, assign, create_job
from fmeval.human.results import export_ratings, import_ratings, judge_agreement, krippendorff_alpha, write_results
from fmeval.model_runners.function import FunctionRunner
from fmeval.runs.loaded import load_run

REPO = Path(__file__).resolve().parent.parent
XSS = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"


def make_runs(tmp_path, items=4):
    rows = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(items)]
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = DataConfig(dataset_name="sums", dataset_uri=str(data), model_input="question", target_output="answer",
                     record_id="id")
    runs = []
    for name, model in (("good", lambda p: "The answer is " + str(2 * int(p.split()[-3]))),
                        ("bad", lambda p: XSS if "0 + 0" in p else "I am not sure.")):
        evaluate(evaluation="factual_knowledge", dataset=cfg, model=FunctionRunner(model, name=name),
                 output=tmp_path / name, progress=False, n_bootstrap=50)
        runs.append(load_run(tmp_path / name))
    return runs


def test_assignment_is_balanced_distinct_and_seeded():
    import random

    raters = ["a", "b", "c"]
    work = assign(10, raters, 2, random.Random(5))
    per_item = Counter(item for items in work.values() for item in items)
    assert all(per_item[item] == 2 for item in range(10))
    assert all(len(set(items)) == len(items) for items in work.values())  # never the same rater twice
    loads = [len(items) for items in work.values()]
    assert max(loads) - min(loads) <= 1 and sum(loads) == 20
    assert assign(10, raters, 2, random.Random(5)) == work
    with pytest.raises(UserError, match="--per-item 4 needs at least that many raters"):
        assign(3, raters, 4, random.Random(0))


def test_agreement_equals_the_hand_computed_values(tmp_path):
    runs = make_runs(tmp_path)[:1]
    create_job(tmp_path / "job", runs=runs, kinds="thumbs", instructions="Is it right?", raters=2, per_item=2)
    job = Job(tmp_path / "job")
    by_record = {item["record_id"]: item["item_id"] for item in job.items()}
    for rater, thumbs in (("rater1", [1, 1, 0, 0]), ("rater2", [1, 0, 0, 0])):
        for record, thumb in zip(["q0", "q1", "q2", "q3"], thumbs):
            job.save_rating(rater, by_record[record], {"thumbs": [thumb]})
    job.close()
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=200)
    # Nominal alpha by hand: pairs (1,1), (1,0), (0,0), (0,0) give the coincidences o11 = 2,
    # o10 = o01 = 1, o00 = 4; n = 8, n1 = 3, n0 = 5. D_o = 2/8, D_e = 2*3*5/(8*7) = 30/56, so
    # alpha = 1 - (2/8)/(30/56) = 8/15.
    assert summary.score("krippendorff_alpha_thumbs").value == pytest.approx(8 / 15)
    # Cohen's kappa: agreement 3/4; chance 1/2*1/4 + 1/2*3/4 = 1/2; kappa = (3/4 - 1/2)/(1/2) = 1/2
    assert summary.config["agreement"]["cohen_kappa"]["thumbs"] == {"rater1|rater2": pytest.approx(0.5)}
    assert summary.score("thumbs_up_good").value == pytest.approx(np.mean([1, 0.5, 0, 0]))
    assert krippendorff_alpha(np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=float), "nominal") == pytest.approx(8 / 15)


def test_export_and_import_round_trip_and_bad_rows_are_refused(tmp_path):
    runs = make_runs(tmp_path)
    create_job(tmp_path / "job", runs=runs, kinds="likert:5,ranking", instructions="Grade", raters=2, per_item=1)
    job = Job(tmp_path / "job")
    assignments = [(rater, item["item_id"]) for item in job.items() for rater in job.raters()
                   if job.assignment(rater, item["item_id"])]
    job.close()
    rows = ["item_id,rater_id,kind,output,value"]
    for rater, item in assignments:
        rows += [f"{item},{rater},likert:5,1,5", f"{item},{rater},likert:5,2,2", f"{item},{rater},ranking,1,1",
                 f"{item},{rater},ranking,2,2"]
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("\n".join(rows) + "\n")
    assert import_ratings(tmp_path / "job", sheet) == 4
    exported = export_ratings(tmp_path / "job", "jsonl")
    assert len(exported.splitlines()) == 16 and '"source": "import:sheet.csv"' in exported
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=100)
    assert summary.score("likert_good").value == 5 and summary.score("likert_bad").value == 2
    assert summary.score("win_rate_good").value == 1.0 and summary.score("win_rate_bad").value == 0.0
    assert summary.score("krippendorff_alpha_likert").value is None  # one rater per item: nothing to agree on
    bad = tmp_path / "bad.csv"
    bad.write_text(f"item_id,rater_id,kind,output,value\n{assignments[0][1]},{assignments[0][0]},likert:5,1,9\n"
                   f"{assignments[0][1]},{assignments[0][0]},likert:5,2,1\n")
    with pytest.raises(UserError, match="9 is outside 1..5"):
        import_ratings(tmp_path / "job", bad)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(job, port):
    process = subprocess.Popen([sys.executable, "-m", "fmeval", "human", "serve", str(job), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/shortcuts.js", timeout=1)
            return process
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the server did not start: {process.stderr.read().decode()}")


def rate_with_keys(page, grades):
    """Answer the current item with the keyboard: a grade per output, then Enter."""
    page.wait_for_selector("#rating")
    for grade in grades:
        page.keyboard.press(str(grade))
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_two_raters_in_the_browser_with_a_server_killed_mid_job(browser, tmp_path, capsys):
    make_runs(tmp_path)
    (tmp_path / "instructions.txt").write_text("Grade each answer from 1 (wrong) to 3 (right).")
    port = free_port()
    assert main(["human", "create", "--run", str(tmp_path / "good"), "--run", str(tmp_path / "bad"),
                 "--instructions", str(tmp_path / "instructions.txt"), "--rating", "likert:3", "--raters", "2",
                 "--per-item", "2", "-o", str(tmp_path / "job"), "--base-url", f"http://127.0.0.1:{port}"]) == 0
    invites = dict(line.split() for line in (tmp_path / "job" / "invites.txt").read_text().splitlines())
    assert oct((tmp_path / "job" / "invites.txt").stat().st_mode & 0o777) == "0o600"
    assert all(token.split("/r/")[1] not in (tmp_path / "job" / "job.sqlite").read_bytes().decode("latin-1")
               for token in invites.values())  # only hashes are stored
    server = start_server(tmp_path / "job", port)
    try:
        contexts = {rater: browser.new_context() for rater in invites}
        pages = {rater: contexts[rater].new_page() for rater in invites}
        for rater, page in pages.items():
            page.goto(invites[rater])
            assert "0 of 4 done" in page.content()
            page.click("text=Start rating")
        job = Job(tmp_path / "job")

        def grades_for(page):  # the good model's answer gets 3, the other 1, in whatever order they are shown
            page.wait_for_selector("#rating")
            outputs = page.locator("div.output").all_inner_texts()[1:]
            return [3 if text.startswith("The answer is") else 1 for text in outputs]

        # rater1 rates two items and skips one; rater2 rates one
        for _ in range(2):
            rate_with_keys(pages["rater1"], grades_for(pages["rater1"]))
        skipped_url = pages["rater1"].url
        with pages["rater1"].expect_navigation():
            pages["rater1"].keyboard.press("s")
        rate_with_keys(pages["rater2"], grades_for(pages["rater2"]))
        assert job.progress("rater1") == {"done": 2, "skipped": 1, "total": 4}

        server.send_signal(signal.SIGKILL)  # nothing acknowledged may be lost
        server.wait()
        server = start_server(tmp_path / "job", port)
        assert job.progress("rater1") == {"done": 2, "skipped": 1, "total": 4}
        assert job.progress("rater2")["done"] == 1

        for rater, page in pages.items():
            page.goto(f"http://127.0.0.1:{port}/")
            while job.progress(rater)["done"] < 4:
                if page.url.endswith(f"{port}/"):
                    page.click("text=Start rating")
                rate_with_keys(page, grades_for(page))
        # the skipped item came back at the end, and was rated
        skipped_item = int(skipped_url.rsplit("/", 1)[1])
        assert job.assignment("rater1", skipped_item)["status"] == "done"
        assert "rated every item" in pages["rater1"].content()

        # the XSS payload is shown as text and runs nothing
        xss_item = next(item["item_id"] for item in job.items() if item["record_id"] == "q0")
        page = pages["rater1"]
        page.goto(f"http://127.0.0.1:{port}/item/{xss_item}")
        assert XSS in page.locator("div.output").all_inner_texts()
        assert page.evaluate("window.__pwned") is None

        # a rater's cookie opens only their own items; forms need the rater's CSRF token and origin
        response = pages["rater2"].goto(f"http://127.0.0.1:{port}/item/999")
        assert response.status == 404
        forged = urllib.request.Request(f"http://127.0.0.1:{port}/item/{xss_item}", data=b"likert_0=1&likert_1=1",
                                        headers={"Cookie": f"fmeval_rater={invites['rater1'].split('/r/')[1]}"})
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(forged)
        job.close()
    finally:
        server.kill()
        server.wait()

    capsys.readouterr()
    assert main(["human", "results", str(tmp_path / "job"), "-o", str(tmp_path / "results")]) == 0
    summary = load_run(tmp_path / "results").summary
    assert summary.score("likert_good").value == 3 and summary.score("likert_bad").value == 1
    assert summary.model["runs"]["good"]["run_id"] == load_run(tmp_path / "good").run_id
    assert summary.score("krippendorff_alpha_likert").value == pytest.approx(1.0)  # both raters agree everywhere
    assert main(["report", str(tmp_path / "results"), "-o", str(tmp_path / "report.html")]) == 0


def judged_run(tmp_path, human_run_outputs, grades, name="judge"):
    """A model_graded run of a function judge that gives each record's grade from `grades`,
    grading `human_run_outputs` (record id -> the output the judge sees)."""
    from fmeval.algorithms.model_graded import ModelGraded

    rows = [{"id": r, "question": r, "answer": "x", "out": out} for r, out in human_run_outputs.items()]
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = DataConfig(dataset_name="sums", dataset_uri=str(data), model_input="question", target_output="answer",
                     model_output="out", record_id="id")

    def judge(prompt):
        return f"[[{grades[prompt.split('Question: ')[1].split()[0]]}]]"

    evaluate(evaluation=ModelGraded(judge_model=FunctionRunner(judge)), dataset=cfg,
             model=None, output=tmp_path / name, progress=False, n_bootstrap=50)
    return load_run(tmp_path / name)


def test_a_judge_agrees_with_the_humans(tmp_path):
    """Spearman (scipy) and Cohen's kappa (scikit-learn 1.9, linear weights over 1..5, pooled over
    the raters) with bootstrap CIs; the judge must have graded the outputs the humans rated."""
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    runs = make_runs(tmp_path, items=6)[:1]
    create_job(tmp_path / "job", runs=runs, kinds="likert:5", instructions="Grade", raters=2, per_item=2)
    job = Job(tmp_path / "job")
    items = sorted(job.items(), key=lambda item: item["record_id"])
    human = {"rater1": [5, 4, 4, 2, 1, 1], "rater2": [5, 5, 4, 2, 2, 1]}  # grade 3 unused
    for rater, grades in human.items():
        for item, grade in zip(items, grades):
            job.save_rating(rater, item["item_id"], {"likert:5": [grade]})
    outputs = {item["record_id"]: item["outputs"][0] for item in items}
    job.close()
    human_run = load_run(write_results(tmp_path / "job", tmp_path / "human", n_bootstrap=200).output_path)
    judge = [5, 4, 5, 2, 1, 2]
    grades = dict(zip(outputs, judge))
    agreement = judge_agreement(judged_run(tmp_path, outputs, grades), human_run, judge_metric="correctness",
                                human_metric="likert_good", n_bootstrap=200)
    means = [np.mean(pair) for pair in zip(*human.values())]
    assert agreement["records"] == 6
    assert agreement["spearman"]["value"] == pytest.approx(spearmanr(judge, means).statistic)
    pooled_judge, pooled_human = judge * 2, human["rater1"] + human["rater2"]
    expected = cohen_kappa_score(pooled_judge, pooled_human, labels=[1, 2, 3, 4, 5], weights="linear")
    assert agreement["cohen_kappa"]["value"] == pytest.approx(expected)
    for statistic in ("spearman", "cohen_kappa"):
        ci = agreement[statistic]
        assert ci["ci_lower"] <= ci["value"] <= ci["ci_upper"] < 1.0001

    # a judge run that graded other outputs for the same record ids is refused, naming the record
    others = judged_run(tmp_path, {r: "something else" for r in outputs}, grades, name="other-judge")
    with pytest.raises(UserError, match="did not grade the outputs the humans rated for good: record 'q0'"):
        judge_agreement(others, human_run, judge_metric="correctness", human_metric="likert_good")


def test_the_raters_page_keeps_answers_shows_the_reference_and_ranks_side_by_side(browser, tmp_path):
    runs = make_runs(tmp_path)
    tokens = create_job(tmp_path / "job", runs=runs, kinds="likert:3,ranking,free-text", instructions="Grade",
                        raters=1, per_item=1, show_reference=True)
    port = free_port()
    server = start_server(tmp_path / "job", port)
    try:
        page = browser.new_context().new_page()
        page.goto(f"http://127.0.0.1:{port}/r/{tokens['rater1']}")
        page.click("text=Start rating")
        page.wait_for_selector("#rating")
        item_id = int(page.url.rsplit("/", 1)[1])
        job = Job(tmp_path / "job")
        item = job.assignment("rater1", item_id)
        assert page.locator("div.reference").inner_text() == "\n".join(item["target_output"])
        first, second = page.locator("section.answer").all()
        one, two = first.bounding_box(), second.bounding_box()
        assert one["y"] == two["y"] and one["x"] + one["width"] <= two["x"]  # side by side, not stacked

        # one grade left out: the save is refused, and every answer given stays on the page
        page.check('input[name="likert_0"][value="2"]')
        page.check('input[name="rank_0"][value="2"]')
        page.check('input[name="rank_1"][value="1"]')
        page.fill("textarea[name=comment]", "the second one <b>is</b> better")
        page.click("text=Save (Enter)")
        page.wait_for_selector("p.fail")
        assert "likert:3 for output 2 is missing" in page.locator("p.fail").inner_text()
        assert page.is_checked('input[name="likert_0"][value="2"]')
        assert page.is_checked('input[name="rank_0"][value="2"]') and page.is_checked('input[name="rank_1"][value="1"]')
        assert page.input_value("textarea[name=comment]") == "the second one <b>is</b> better"
        assert job.assignment("rater1", item_id)["rating"] is None

        page.check('input[name="likert_1"][value="3"]')
        with page.expect_navigation():
            page.click("text=Save (Enter)")
        history = job.history("rater1", item_id)
        assert len(history) == 1 and history[0]["rating"]["free-text"] == "the second one <b>is</b> better"
        assert history[0]["seconds"] > 0  # from the first time the page was shown to the save
        # coming back to a rated item says that saving replaces the rating, and keeps the history
        page.goto(f"http://127.0.0.1:{port}/item/{item_id}")
        assert "Saving again replaces that rating" in page.locator("p.revision").inner_text()
        job.close()
    finally:
        server.kill()
        server.wait()
