"""Task files, the shipped catalogue, Hub datasets saved locally in the Hub's layout, and `--task` runs.

Oracles: lm-evaluation-harness 0.4.13 (`test` extra) renders the same task YAML on the same local data;
its prompts and acc/acc_norm must equal ours exactly.
"""
from __future__ import annotations

import json
import random

import pytest

from fmeval.errors import UserError

LM_EVAL_VERSION = "0.4.13"
WORDS = ["Paris", "Tokyo", "cat", "dog", "mat", "water", "degrees", "Hamlet", "capital", "the", "of"]


def save_hub_layout(root, configs: dict[str, dict[str, list[dict]]]):
    """A dataset directory as the Hub stores one: parquet files per config and split, and a README card
    whose `configs:` metadata maps them (what `datasets.load_dataset(DIR, CONFIG, split=...)` reads)."""
    import pandas as pd

    card = ["---", "configs:"]
    for config, splits in configs.items():
        card += [f"- config_name: {config}", "  data_files:"]
        for split, rows in splits.items():
            (root / config).mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_parquet(root / config / f"{split}-00000-of-00001.parquet")
            card += [f"  - split: {split}", f"    path: {config}/{split}-*.parquet"]
    (root / "README.md").write_text("\n".join(card + ["---", "", "A local copy for tests."]) + "\n")
    return root


def arc_rows(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        texts = list(dict.fromkeys(" ".join(rng.choices(WORDS, k=rng.randint(1, 4))) for _ in range(4)))
        labels = "ABCD"[:len(texts)]
        rows.append({"id": f"arc{index}", "question": " ".join(rng.choices(WORDS, k=rng.randint(2, 7))) + "?",
                     "choices": {"text": texts, "label": list(labels)}, "answerKey": rng.choice(labels)})
    return rows


def mmlu_rows(subject: str, count: int, seed: int) -> list[dict]:
    rng = random.Random(f"{subject}{seed}")
    return [{"question": f" {subject} question {i} about {rng.choice(WORDS)}? ", "subject": subject,
             "choices": [rng.choice(WORDS) for _ in range(4)], "answer": rng.randint(0, 3)} for i in range(count)]


@pytest.fixture
def hub_mirror(tmp_path, monkeypatch):
    root = tmp_path / "hub"
    monkeypatch.setenv("FMEVAL_HUB_MIRROR", str(root))
    monkeypatch.setenv("FMEVAL_CACHE_DIR", str(tmp_path / "cache"))
    return root


def test_tasks_list_shows_the_shipped_catalogue(capsys):
    from fmeval.cli import main

    assert main(["tasks", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {line.split()[0] for line in lines}
    assert {"boolq", "arc_easy", "arc_challenge", "hellaswag", "piqa", "truthfulqa_mc1", "truthfulqa_mc2",
            "wikitext", "mmlu", "mmlu_stem"} <= names
    assert len([name for name in names if name.startswith("mmlu_") and name not in
                ("mmlu_stem", "mmlu_other", "mmlu_social_sciences", "mmlu_humanities")]) == 57
    assert not [line for line in lines if "cannot run" in line]


def test_tasks_check_says_which_of_lm_evals_own_yamls_run(capsys):
    from pathlib import Path

    import lm_eval

    from fmeval.cli import main

    tasks = Path(lm_eval.__file__).parent / "tasks"
    assert main(["tasks", "check", str(tasks / "arc")]) == 0
    out = capsys.readouterr().out
    assert "arc_easy: runs" in out and "arc_challenge: runs" in out
    assert "arc_challenge_chat: cannot run: output_type generate_until is not implemented" in out
    assert main(["tasks", "check", str(tasks / "hellaswag")]) == 1
    assert "process_docs is Python code (!function utils.process_docs)" in capsys.readouterr().out


@pytest.mark.slow
def test_lm_evals_arc_yaml_runs_unchanged_and_equals_lm_eval(tiny_llama_dir, hub_mirror, tmp_path):
    """lm-eval's own arc_easy.yaml, unchanged, on a local copy of allenai/ai2_arc: prompts, acc and
    acc_norm equal lm-eval's on the same tiny model."""
    from pathlib import Path

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from fmeval.model_runners.huggingface import HuggingFaceRunner
    from fmeval.runs.evaluate import evaluate

    assert lm_eval.__version__ == LM_EVAL_VERSION
    local = save_hub_layout(hub_mirror / "allenai" / "ai2_arc", {"ARC-Easy": {"test": arc_rows(30, 1),
                                                                            "train": arc_rows(5, 2)}})
    yaml_file = Path(lm_eval.__file__).parent / "tasks" / "arc" / "arc_easy.yaml"
    runner = HuggingFaceRunner(tiny_llama_dir, batch_size=4)
    summary = evaluate(task=str(yaml_file), model=runner, output=str(tmp_path / "run"), cache=False, store=False,
                       progress=False, n_bootstrap=100)
    import yaml

    config = yaml.safe_load(yaml_file.read_text()) | {"dataset_path": str(local)}
    config.pop("tag")
    runner.load()
    lm = HFLM(pretrained=runner._model, tokenizer=runner._tokenizer, batch_size=4)
    theirs = lm_eval.simple_evaluate(model=lm, tasks=[config], task_manager=TaskManager(include_defaults=False),
                                     bootstrap_iters=0, log_samples=True)
    scores = {score.name: score.value for score in summary.dataset_scores}
    assert scores == {"acc": theirs["results"]["arc_easy"]["acc,none"],
                      "acc_norm": theirs["results"]["arc_easy"]["acc_norm,none"]}
    ours = {line["record_id"]: line for line in map(json.loads, (tmp_path / "run" / "records.jsonl").open())}
    for sample in theirs["samples"]["arc_easy"]:
        line = ours[f"arc_easy/{sample['doc_id']}"]
        assert line["prompt"] == sample["arguments"][0][0]
        assert [" " + choice for choice in line["choices"]] == [argument[1] for argument in sample["arguments"]]


def test_mmlu_group_runs_on_a_local_copy_with_subjects_as_categories(tiny_llama_dir, hub_mirror, tmp_path):
    from fmeval.cli import main
    from fmeval.tasks import find_tasks

    subjects = sorted(task.dataset_name for task in find_tasks().members("mmlu"))
    assert len(subjects) == 57
    save_hub_layout(hub_mirror / "cais" / "mmlu", {s: {"test": mmlu_rows(s, 2, 0), "dev": mmlu_rows(s, 5, 1)}
                                                    for s in subjects})
    code = main(["run", "--task", "mmlu", "-m", f"hf:{tiny_llama_dir}", "-n", "100", "-o", str(tmp_path / "run"),
                 "--no-cache", "--n-bootstrap", "50"])
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["num_records"] == 100 and summary["eval_name"] == "multiple_choice"
    categories = {category["name"] for category in summary["category_scores"]}
    assert categories <= set(subjects) and len(categories) > 30
    line = json.loads((tmp_path / "run" / "records.jsonl").open().readline())
    subject = line["category"]
    doc = mmlu_rows(subject, 2, 0)[int(line["record_id"].rsplit("/", 1)[1])]
    assert line["prompt"] == (
        f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        f"{doc['question'].strip()}\nA. {doc['choices'][0]}\nB. {doc['choices'][1]}\nC. {doc['choices'][2]}\n"
        f"D. {doc['choices'][3]}\nAnswer:")
    assert line["choices"] == ["A", "B", "C", "D"] and line["target_output"] == ["ABCD"[doc["answer"]]]


def _fewshot_task(directory, sampler: str) -> str:
    (directory / "fewshot.yaml").write_text(
        "task: tiny_fewshot\ndataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {directory / 'docs.jsonl'}, train: {directory / 'train.jsonl'}}}}}\n"
        "test_split: test\ntraining_split: train\nnum_fewshot: 2\n"
        f"fewshot_config: {{sampler: {sampler}}}\n"
        "description: 'Answer these.\n\n'\noutput_type: multiple_choice\n"
        "doc_to_text: 'Q: {{question}}\nA:'\ndoc_to_choice: '{{choices.text}}'\n"
        "doc_to_target: '{{choices.label.index(answerKey)}}'\nmetric_list: [{metric: acc}]\n")
    return str(directory / "fewshot.yaml")


@pytest.mark.parametrize("sampler", ["first_n", "default"])
def test_fewshot_prompts_equal_lm_evals(tiny_llama_dir, tmp_path, sampler, monkeypatch):
    """Few-shot contexts (description, examples with their answers, delimiters) are built as lm-eval
    builds them, from the same split and with the same seeded draws."""
    import lm_eval
    import yaml
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from fmeval.model_runners.huggingface import HuggingFaceRunner
    from fmeval.tasks import materialize, resolve

    monkeypatch.setenv("FMEVAL_CACHE_DIR", str(tmp_path / "cache"))
    for name, rows in (("docs", arc_rows(8, 3)), ("train", arc_rows(6, 4))):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    path = _fewshot_task(tmp_path, sampler)
    name, tasks = resolve(path)
    options = materialize(name, tasks, tmp_path / "records")
    ours = [json.loads(line)["input"] for line in open(options["dataset"])]
    runner = HuggingFaceRunner(tiny_llama_dir, batch_size=4)
    runner.load()
    lm = HFLM(pretrained=runner._model, tokenizer=runner._tokenizer, batch_size=4)
    theirs = lm_eval.simple_evaluate(model=lm, tasks=[yaml.safe_load(open(path))], log_samples=True,
                                     task_manager=TaskManager(include_defaults=False), bootstrap_iters=0)
    prompts = {sample["doc_id"]: sample["arguments"][0][0] for sample in theirs["samples"]["tiny_fewshot"]}
    assert ours == [prompts[index] for index in range(len(ours))]
    assert ours[0].startswith("Answer these.\nQ: ") and ours[0].count("Q: ") == 3  # two examples, then the question


def test_resuming_a_task_run_whose_hub_dataset_moved_is_refused(tiny_llama_dir, hub_mirror, tmp_path):
    from fmeval.model_runners.huggingface import HuggingFaceRunner
    from fmeval.runs.evaluate import evaluate

    task = tmp_path / "arc.yaml"
    task.write_text("task: tiny_arc\ndataset: hf:allenai/ai2_arc\ndataset_name: ARC-Easy\ntest_split: test\n"
                    "output_type: multiple_choice\ndoc_to_text: 'Question: {{question}}\nAnswer:'\n"
                    "doc_to_target: '{{choices.label.index(answerKey)}}'\ndoc_to_choice: '{{choices.text}}'\n")
    rows = arc_rows(6, 5)
    save_hub_layout(hub_mirror / "allenai" / "ai2_arc", {"ARC-Easy": {"test": rows}})
    runner = HuggingFaceRunner(tiny_llama_dir, batch_size=4)
    options = dict(task=str(task), model=runner, output=str(tmp_path / "run"), cache=False, store=False,
                   progress=False, n_bootstrap=20)
    first = evaluate(**options)
    assert first.num_records == 6 and len(first.dataset["sha256"][0]) == 64
    rows[0]["question"] = "a changed question?"
    save_hub_layout(hub_mirror / "allenai" / "ai2_arc", {"ARC-Easy": {"test": rows}})
    with pytest.raises(UserError, match="(?i)different|changed|resume"):
        evaluate(**options)


def test_a_hub_dataset_missing_offline_says_what_to_do(monkeypatch, tmp_path):
    from fmeval.tasks.documents import hub_split

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="not in the datasets cache and HF_DATASETS_OFFLINE is set"):
        hub_split("nobody/no-such-dataset", None, "test")


def test_a_task_file_with_python_code_is_refused_with_the_reason(tmp_path):
    from fmeval.tasks import resolve

    (tmp_path / "utils.py").write_text("def f(doc): return doc\n")
    task = tmp_path / "t.yaml"
    task.write_text("task: coded\ndataset_path: x/y\ndoc_to_text: !function utils.f\ndoc_to_choice: [a, b]\n")
    with pytest.raises(UserError, match=r"doc_to_text is Python code \(!function utils.f\)"):
        resolve(str(task))


def _qa_rows(count: int) -> list[dict]:
    return [{"qid": f"r{i}", "question": f"what is word {i}", "answer": f"WORD {i}"} for i in range(count)]


def test_any_evaluation_runs_on_a_hub_dataset_with_its_content_hash(hub_mirror, tmp_path):
    from fmeval.runs.evaluate import evaluate

    save_hub_layout(hub_mirror / "someone" / "qa", {"default": {"validation": _qa_rows(12), "test": _qa_rows(3)}})
    options = dict(evaluation="factual_knowledge", dataset="hf:someone/qa", split="validation",
                   model="function:tests.support:upper_model", num_records=5, seed=7, cache=False, store=False,
                   progress=False, n_bootstrap=20,
                   dataset_fields={"model_input": "question", "target_output": "answer", "record_id": "qid"})
    first = evaluate(output=str(tmp_path / "one"), **options)
    again = evaluate(output=str(tmp_path / "two"), **options)
    ids = [json.loads(line)["record_id"] for line in (tmp_path / "one" / "records.jsonl").open()]
    assert first.num_records == 5 and len(set(ids)) == 5 and {i[1:].isdigit() for i in ids} == {True}
    assert sorted(ids) == sorted(json.loads(line)["record_id"] for line in (tmp_path / "two" / "records.jsonl").open())
    assert {s.name: s.value for s in first.dataset_scores}["factual_knowledge"] == 1.0  # "WHAT IS WORD 3" has "WORD 3"
    assert first.dataset_name.startswith("someone_qa-validation-") and len(first.dataset["sha256"][0]) == 64
    moved = _qa_rows(11)  # fewer rows: the datasets cache's recorded split size must not stop the read
    moved[0]["answer"] = "moved"
    save_hub_layout(hub_mirror / "someone" / "qa", {"default": {"validation": moved}})
    with pytest.raises(UserError, match="different configuration"):
        evaluate(output=str(tmp_path / "one"), **options)


def test_hub_options_without_a_hub_dataset_are_refused(tmp_path):
    from fmeval.runs.config import build_config

    with pytest.raises(UserError, match="--hf-name and --revision are for a --dataset hf:ORG/NAME"):
        build_config(None, {"evaluation": "factual_knowledge", "dataset": "trex", "revision": "abc"})


def test_shipped_templates_equal_lm_evals_python_preprocessing(mirror):
    """HellaSwag's and WikiText's Python preprocessing in lm-eval 0.4.13, as the shipped Jinja2 templates
    write it; TruthfulQA MC2's true answers as its targets."""
    import datasets
    from lm_eval.tasks.hellaswag.utils import process_docs
    from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

    from fmeval.tasks import find_tasks
    from fmeval.tasks.prompts import Renderer

    tasks = find_tasks().tasks
    docs = [{"activity_label": "Removing ice from car", "ctx_a": "Then, the man writes over the snow.", "ctx_b": "then",
             "endings": [", the man adds wax.", " [title] a person  boards a lift [step] now.", " [header] x", "  y "],
             "label": "3"},
            {"activity_label": "Baking", "ctx_a": "She mixes  flour [substeps] well", "ctx_b": "", "label": "0",
             "endings": ["[title] Bake it.", "b", "c [x] d", "e  f"]}]
    hellaswag = Renderer(tasks["hellaswag"])
    for doc, expected in zip(docs, process_docs(datasets.Dataset.from_list(docs))):
        assert hellaswag.text(doc) == expected["query"]
        assert hellaswag.choices(doc) == expected["choices"]
        assert hellaswag.gold_choices(doc, hellaswag.choices(doc)) == [expected["choices"][expected["gold"]]]
    pages = (mirror / "wikitext2" / "wiki.test.raw").read_text(encoding="utf-8")[:200_000].split("\n = ")
    wikitext = Renderer(tasks["wikitext"])
    for page in pages[:40]:
        assert wikitext.answer({"page": page}) == wikitext_detokenizer({"page": page})
    assert wikitext.render(tasks["wikitext"].units_text, {"page": pages[1]}) == pages[1]
    mc2 = {"question": "Q?", "mc2_targets": {"choices": ["t1", "t2", "f1", "f2"], "labels": [1, 1, 0, 0]}}
    renderer = Renderer(tasks["truthfulqa_mc2"])
    assert renderer.gold_choices(mc2, renderer.choices(mc2)) == ["t1", "t2"]
    assert renderer.text(mc2).endswith("\n\nQ: Q?\nA:") and renderer.text(mc2).startswith("Q: What is human life")
