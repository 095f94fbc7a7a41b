"""fmeval run (factual_knowledge, 100 T-REx records, SmolLM2, 16 new tokens) against a raw
length-sorted batched `model.generate` loop over the same prompts, in the same process.

Both sides load the model from the same converted-GGUF cache; each is run ROUNDS times,
alternating, and the best time of each is compared. fmeval runs with --no-cache --overwrite,
so every round generates every output (its JSON line reports cache_hits, which must be 0),
and its outputs must equal the reference's on every record.
Last line: {"name", "ours_s", "reference_s", "ratio", "cache_hits"}. Goal: ratio <= 1.15.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from common import alternate, cache_hits, converted_smollm2, result_line
from transformers import AutoModelForCausalLM, AutoTokenizer

from fmeval.cli import main as fmeval_main

NUM_RECORDS, MAX_NEW_TOKENS, BATCH_SIZE, ROUNDS = 100, 16, 32, 3


def run_fmeval(output: Path) -> list[dict]:
    code = fmeval_main([
        "run", "--evaluation", "factual_knowledge", "--dataset", "trex", "--model", "smollm2",
        "--num-records", str(NUM_RECORDS), "--max-new-tokens", str(MAX_NEW_TOKENS),
        "--batch-size", str(BATCH_SIZE), "--output", str(output), "--overwrite", "--no-cache", "--no-progress",
    ])
    assert code == 0, f"fmeval run exited {code}"
    assert cache_hits(output) == 0, "a round replayed cached answers: it would not time real work"
    return [json.loads(line) for line in (output / "records.jsonl").read_text().splitlines()]


def run_reference(model_dir: Path, prompts: list[str]) -> list[str]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in prompts
    ]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    outputs: list[str] = [""] * len(ids)
    for start in range(0, len(order), BATCH_SIZE):
        batch = order[start : start + BATCH_SIZE]
        padded = tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
        with torch.inference_mode():
            generated = model.generate(**padded, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                       temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
        decoded = tokenizer.batch_decode(generated[:, padded["input_ids"].shape[1]:], skip_special_tokens=True)
        for index, text in zip(batch, decoded):
            outputs[index] = text
    return outputs


def main() -> None:
    model_dir = converted_smollm2()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        ours, reference, records, outputs = alternate(
            ROUNDS, lambda: run_fmeval(run_dir), lambda records: run_reference(model_dir, [r["prompt"] for r in records])
        )
        score = json.loads((run_dir / "summary.json").read_text())["dataset_scores"][0]
    agree = sum(record["model_output"] == output for record, output in zip(records, outputs))
    print(f"outputs identical to the reference on {agree}/{len(records)} records; "
          f"factual_knowledge = {score['value']:.3f}")
    assert agree == len(records) == NUM_RECORDS, "fmeval's outputs differ from the reference's"
    result_line("hf_throughput", min(ours), min(reference), cache_hits=0)


if __name__ == "__main__":
    main()
