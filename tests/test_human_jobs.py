"""Rating jobs: what `human create` and `human import` refuse, gold items and raters' accuracy,
the history of a rating, results in the run store under the runs' model names, and the host
rules of `human serve`."""
import json

import pytest

from fmeval import evaluate
from fmeval.cli import main
from fmeval.datasets import DataConfig
from fmeval.errors import UserError
from fmeval.governance.cards import from_run
from fmeval.human.job import COMMENT_LIMIT, Job, create_job
from fmeval.human.results import export_ratings, import_ratings, write_results
from fmeval.model_runners.function import FunctionRunner
from fmeval.runs.loaded import load_run
from tests.test_human import make_runs


def test_results_are_in_the_run_store_under_the_runs_model_names(tmp_path, capsys, store_url):
    make_runs(tmp_path)
    assert main(["human", "create", "--run", str(tmp_path / "good"), "--run", str(tmp_path / "bad"),
                 "--instructions", __file__, "--rating", "thumbs", "--raters", "1", "--per-item", "1",
                 "-o", str(tmp_path / "job")]) == 0
    job = Job(tmp_path / "job")
    for item in job.items():
        job.save_rating("rater1", item["item_id"], {"thumbs": [1, 0]})
    job.close()
    capsys.readouterr()
    assert main(["human", "results", str(tmp_path / "job"), "-o", str(tmp_path / "results"),
                 "--store-url", store_url, "--create"]) == 0
    run_id = load_run(tmp_path / "results").run_id
    assert main(["runs", "--store-url", store_url, "list", "--evaluation", "human"]) == 0
    listed = capsys.readouterr().out
    assert run_id in listed and "good vs bad" in listed
    by_id = load_run(run_id, store=store_url)  # anything that takes a run id finds it
    assert by_id.summary.score("thumbs_up_good").value == 1 and by_id.summary.score("thumbs_up_bad").value == 0
    assert by_id.label == "good vs bad" and from_run(by_id)[0]["model_name"] == "good vs bad"


def test_one_model_rated_names_its_card_after_that_model(tmp_path):
    runs = make_runs(tmp_path)[:1]
    create_job(tmp_path / "job", runs=runs, kinds="likert:3", instructions="Grade", raters=1, per_item=1)
    run = load_run(write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=10).output_path)
    assert from_run(run)[0]["model_name"] == "good"


def run_on(tmp_path, name, rows, model):
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = DataConfig(dataset_name=name, dataset_uri=str(data), model_input="question", target_output="answer",
                     record_id="id")
    evaluate(evaluation="factual_knowledge", dataset=cfg, model=FunctionRunner(model, name=name),
             output=tmp_path / name, progress=False, n_bootstrap=10)
    return load_run(tmp_path / name)


def test_create_refuses_runs_that_answer_different_questions(tmp_path):
    planets = run_on(tmp_path, "planets", [{"id": "r1", "question": "How many planets are there?", "answer": "8"}],
                     lambda p: "8")
    french = run_on(tmp_path, "french", [{"id": "r1", "question": "Say eleven in French", "answer": "onze"}],
                    lambda p: "nombre 11")
    with pytest.raises(UserError, match="different datasets.*'planets'.*'french'"):
        create_job(tmp_path / "job", runs=[planets, french], kinds="thumbs", instructions="x", raters=1, per_item=1)
    # the same dataset name, but one record id holds another question
    (tmp_path / "other").mkdir()
    edited = run_on(tmp_path / "other", "planets",
                    [{"id": "r1", "question": "How many moons has Mars?", "answer": "2"}], lambda p: "2")
    with pytest.raises(UserError, match="record 'r1' has different inputs"):
        create_job(tmp_path / "job", runs=[planets, edited], kinds="thumbs", instructions="x", raters=1, per_item=1)
    with pytest.raises(UserError, match="is given twice; rate each run once"):
        create_job(tmp_path / "job", runs=[planets, planets], kinds="thumbs", instructions="x", raters=1, per_item=1)
    with pytest.raises(UserError, match="thumbs is given twice"):
        create_job(tmp_path / "job", runs=[planets], kinds="thumbs,thumbs", instructions="x", raters=1, per_item=1)
    with pytest.raises(UserError, match="one likert scale per job"):
        create_job(tmp_path / "job", runs=[planets], kinds="likert:5,likert:7", instructions="x", raters=1,
                   per_item=1)
    assert not (tmp_path / "job").exists()


def one_rater_job(tmp_path, kinds="likert:5,free-text"):
    create_job(tmp_path / "job", runs=make_runs(tmp_path)[:1], kinds=kinds, instructions="Grade", raters=1, per_item=1)
    job = Job(tmp_path / "job")
    return job, job.items()[0]["item_id"]


def test_import_refuses_values_of_the_wrong_type_and_a_missing_file_exits_2(tmp_path, capsys):
    job, item = one_rater_job(tmp_path)
    job.close()
    for value, shown in ((3.7, "3.7"), (True, "True"), ("3.7", "'3.7'")):
        sheet = tmp_path / "ratings.jsonl"
        sheet.write_text(json.dumps({"item_id": item, "rater_id": "rater1", "kind": "likert:5", "output": 1,
                                     "value": value}) + "\n")
        with pytest.raises(UserError, match=rf"ratings.jsonl:1: likert:5: {shown} is not a whole number"):
            import_ratings(tmp_path / "job", sheet)
    sheet.write_text(json.dumps({"item_id": item, "rater_id": "rater1", "kind": "likert:5", "output": 1, "value": 4})
                     + "\n" + json.dumps({"item_id": item, "rater_id": "rater1", "kind": "free-text", "value": 12})
                     + "\n")
    with pytest.raises(UserError, match="a comment is text, got 12"):
        import_ratings(tmp_path / "job", sheet)
    job = Job(tmp_path / "job")
    assert list(job.ratings()) == []  # nothing was saved
    job.close()
    capsys.readouterr()
    assert main(["human", "import", str(tmp_path / "job"), str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_a_replaced_rating_keeps_its_history_and_long_comments_are_refused(tmp_path):
    job, item = one_rater_job(tmp_path)
    assert job.save_rating("rater1", item, {"likert:5": [2], "free-text": "first look"}) == 1
    assert job.save_rating("rater1", item, {"likert:5": ["5"], "free-text": "on reflection"}) == 2
    too_long = f"the comment has {COMMENT_LIMIT + 1} characters; the limit is {COMMENT_LIMIT}"
    with pytest.raises(UserError, match=too_long):
        job.save_rating("rater1", item, {"likert:5": [4], "free-text": "x" * (COMMENT_LIMIT + 1)})
    assert [h["rating"] for h in job.history("rater1", item)] == [{"likert:5": [2], "free-text": "first look"},
                                                                 {"likert:5": [5], "free-text": "on reflection"}]
    assert job.assignment("rater1", item)["rating"] == {"likert:5": [5], "free-text": "on reflection"}
    job.close()
    rows = [json.loads(line) for line in export_ratings(tmp_path / "job", "jsonl", history=True).splitlines()]
    grades = [(row["revision"], row["value"], row["current"]) for row in rows if row["kind"] == "likert:5"]
    assert grades == [(1, 2, False), (2, 5, True)]
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=10)
    assert summary.config["rater_quality"]["rater1"]["ratings_replaced"] == 1


def test_gold_items_are_mixed_in_at_the_rate_and_measure_each_rater(tmp_path, capsys):
    runs = make_runs(tmp_path, items=8)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": f"g{i}", "model_input": f"What is {i} + 1?",
                                        "outputs": [str(i + 1), "no idea"], "answers": {"thumbs": [1, 0]}}) + "\n"
                            for i in range(3)))
    create_job(tmp_path / "job", runs=runs, kinds="thumbs", instructions="Right?", raters=2, per_item=1,
               gold=gold, gold_rate=0.2)
    job = Job(tmp_path / "job")
    gold_items = {item["item_id"] for item in job.items(gold=True)}
    assert len(gold_items) == 3 and len(job.items()) == 8
    for rater in job.raters():  # 4 ordinary items each; 0.2 gold -> ceil(0.2 * 4 / 0.8) = 1 gold item each
        mine = [i for i in range(11) if job.assignment(rater, i)]
        assert len(mine) == 5 and len(gold_items & set(mine)) == 1
        for item in mine:  # rater1 answers the gold item right, rater2 gets one of its two answers wrong
            answer = [1, 0] if rater == "rater1" or item not in gold_items else [1, 1]
            job.save_rating(rater, item, {"thumbs": answer})
    job.close()
    summary = write_results(tmp_path / "job", tmp_path / "results", n_bootstrap=10)
    quality = summary.config["rater_quality"]
    assert quality["rater1"]["gold_accuracy"] == 1.0 and quality["rater2"]["gold_accuracy"] == 0.5
    assert quality["rater1"]["items_rated"] == 4 and quality["rater1"]["gold_answers"] == 2
    assert summary.num_records == 8  # gold items are not results, nor in any agreement
    assert summary.config["agreement"]["cohen_kappa"]["thumbs"] == {}
    assert not any(line["record_id"].startswith("gold:") for line in load_run(tmp_path / "results").records())
    # too few gold items for the rate is refused, saying how many are needed
    with pytest.raises(UserError, match="needs 4 distinct gold items; .*gold.jsonl holds 3"):
        create_job(tmp_path / "job2", runs=runs, kinds="thumbs", instructions="x", raters=2, per_item=1,
                   gold=gold, gold_rate=0.5)
    bad = tmp_path / "bad-gold.jsonl"
    bad.write_text(json.dumps({"model_input": "q", "outputs": ["a", "b"], "answers": {"thumbs": [1, 2]}}) + "\n")
    with pytest.raises(UserError, match=r"bad-gold.jsonl:1: answers: thumbs: 2 is outside 0..1"):
        create_job(tmp_path / "job3", runs=runs, kinds="thumbs", instructions="x", raters=2, per_item=1, gold=bad)
    assert main(["human", "create", "--run", str(tmp_path / "good"), "--instructions", str(gold), "--rating",
                 "thumbs", "--raters", "1", "--per-item", "1", "--gold-rate", "0.2", "-o", str(tmp_path / "job4")]) == 2
    assert "--gold-rate needs --gold FILE" in capsys.readouterr().err


def test_serve_refuses_a_remote_host_without_tls(tmp_path, capsys):
    one_rater_job(tmp_path)[0].close()
    # a documentation address (TEST-NET-1): were it not refused, binding it would fail, never serve
    assert main(["human", "serve", str(tmp_path / "job"), "--host", "192.0.2.1"]) == 2
    assert "--tls-cert and --tls-key, or --allow-insecure-remote" in capsys.readouterr().err
    assert main(["human", "serve", str(tmp_path / "job"), "--tls-cert", "cert.pem"]) == 2
    assert "go together" in capsys.readouterr().err
    import socket

    with socket.socket() as taken:  # a port in use is one line and exit 2, as for the dashboard
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["human", "serve", str(tmp_path / "job"), "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot serve on 127.0.0.1" in err and "Traceback" not in err


def test_serve_over_tls_sets_a_secure_cookie(tmp_path):
    """A real HTTPS server (a self-signed certificate made with openssl) on loopback."""
    import ssl
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from tests.test_human import REPO, free_port

    tokens = create_job(tmp_path / "job", runs=make_runs(tmp_path)[:1], kinds="thumbs", instructions="x", raters=1,
                        per_item=1)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")], check=True,
                   capture_output=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fmeval", "human", "serve", str(tmp_path / "job"), "--port",
                               str(port), "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key",
                               str(tmp_path / "key.pem")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    context.check_hostname = False

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
    try:
        while True:  # until it answers (or dies, saying why)
            try:
                opener.open(f"https://127.0.0.1:{port}/shortcuts.js", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.05)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(f"https://127.0.0.1:{port}/r/{tokens['rater1']}", timeout=5)
        assert redirect.value.code == 303
        cookie = redirect.value.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    finally:
        server.kill()
        server.wait()
