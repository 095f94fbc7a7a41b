"""BoolQ zero-shot (the shipped `boolq` task, lm-eval's prompt) on the bundled SmolLM2 with the cache
off, against lm-evaluation-harness's own `hf` backend (lm-eval 0.4.13) on the same records, in the same
run: the BoolQ dev split of the shared mirror (3,270 records; `--limit N` takes the first N), saved
locally in the Hub's layout as aps/super_glue's boolq (passage, question, label). Both use batch size
32, float32 on the CPU, and load the same converted model inside the timing. acc must be equal.
Last line: {"name", "ours_s", "reference_s", "ratio", "metric_equal", "records", "cache_hits"}.
Goal: ratio <= 0.8.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import cache_hits, converted_smollm2, result_line

BATCH_SIZE = 32
MIRROR = Path(os.environ.get("FMEVAL_DATASET_MIRROR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def save_boolq(root: Path, limit: int | None) -> Path:
    """The mirror's BoolQ dev split as the Hub stores aps/super_glue's boolq config."""
    rows = [json.loads(line) for line in (MIRROR / "boolq" / "dev.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [{"question": r["question"], "passage": r["passage"], "idx": i, "label": int(r["answer"])}
            for i, r in enumerate(rows[:limit])]
    directory = root / "aps" / "super_glue"
    (directory / "boolq").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(directory / "boolq" / "validation-00000-of-00001.parquet")
    (directory / "README.md").write_text("---\nconfigs:\n- config_name: boolq\n  data_files:\n  - split: validation\n"
                                         "    path: boolq/validation-*.parquet\n---\n")
    return directory


def run_fmeval(model_dir: Path, output: Path) -> float:
    from fmeval.cli import main as fmeval_main

    code = fmeval_main(["run", "--task", "boolq", "--model", str(model_dir), "--batch-size", str(BATCH_SIZE),
                        "--dtype", "float32", "--device", "cpu", "--no-cache", "--output", str(output), "--overwrite",
                        "--no-progress", "--n-bootstrap", "0"])
    assert code == 0, f"fmeval run exited {code}"
    assert cache_hits(output) == 0, "the run replayed cached answers: it would not time real work"
    summary = json.loads((output / "summary.json").read_text())
    return next(s["value"] for s in summary["dataset_scores"] if s["name"] == "acc")


def run_lm_eval(model_dir: Path, dataset_dir: Path) -> float:
    import lm_eval
    import yaml
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from fmeval.tasks import CATALOGUE

    task = yaml.safe_load((CATALOGUE / "boolq.yaml").read_text()) | {"dataset_path": str(dataset_dir)}
    for key in ("tag", "training_split"):  # the local copy holds the validation split only
        task.pop(key)
    model = HFLM(pretrained=str(model_dir), batch_size=BATCH_SIZE, dtype="float32", device="cpu")
    results = lm_eval.simple_evaluate(model=model, tasks=[task], task_manager=TaskManager(include_defaults=False),
                                      bootstrap_iters=0)
    return results["results"]["boolq"]["acc,none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="the first N records (default: all 3,270)")
    args = parser.parse_args()
    model_dir = converted_smollm2()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FMEVAL_HUB_MIRROR"] = str(Path(tmp) / "hub")
        os.environ["FMEVAL_STORE"] = str(Path(tmp) / "store.sqlite")  # the run is indexed apart from the user's
        dataset_dir = save_boolq(Path(tmp) / "hub", args.limit)
        records = len(pd.read_parquet(next((dataset_dir / "boolq").glob("*.parquet"))))
        started = time.perf_counter()
        ours = run_fmeval(model_dir, Path(tmp) / "run")
        ours_s = time.perf_counter() - started
        print(f"ours: {ours_s:.1f} s", flush=True)
        started = time.perf_counter()
        reference = run_lm_eval(model_dir, dataset_dir)
        reference_s = time.perf_counter() - started
    print(f"{records} records: acc ours {ours:.6f}, lm-eval {reference:.6f}; ours {ours_s:.1f} s, lm-eval {reference_s:.1f} s")
    result_line("loglikelihood_throughput", ours_s, reference_s, metric_equal=ours == reference, records=records,
                cache_hits=0)


if __name__ == "__main__":
    main()
