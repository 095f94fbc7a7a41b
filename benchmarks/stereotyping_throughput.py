"""prompt_stereotyping over the full CrowS-Pairs (1,508 pairs) with SmolLM2, against a raw
length-sorted batched forward pass that sums log-probabilities over the same 3,016 sentences,
in the same process. Both load the converted model from the same cache. fmeval runs with
--no-cache --overwrite (cache_hits must be 0), and every log-probability must equal the
reference's within 1e-3. Also printed: how many pairs are stereotyped with the sum (default)
and with the mean per token (as AWS fmeval's Hugging Face runner scores sentences).
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

BATCH_SIZE, ROUNDS = 32, 2


def run_fmeval(output: Path) -> list[dict]:
    code = fmeval_main(["run", "--evaluation", "prompt_stereotyping", "--dataset", "crows-pairs", "--model", "smollm2",
                        "--batch-size", str(BATCH_SIZE), "--no-cache", "--output", str(output), "--overwrite",
                        "--no-progress"])
    assert code == 0, f"fmeval run exited {code}"
    assert cache_hits(output) == 0, "a round replayed cached answers: it would not time real work"
    return [json.loads(line) for line in (output / "records.jsonl").read_text().splitlines()]


def sentences(lines: list[dict]) -> list[str]:
    return [l["sent_more_input"] for l in lines] + [l["sent_less_input"] for l in lines]


def run_reference(model_dir: Path, sentences: list[str]) -> list[float]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    bos = tokenizer.bos_token_id
    ids = [[bos, *tokenizer(s, add_special_tokens=False)["input_ids"]] for s in sentences]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    totals = [0.0] * len(ids)
    for start in range(0, len(order), BATCH_SIZE):
        batch = order[start : start + BATCH_SIZE]
        width = max(len(ids[i]) for i in batch)
        tokens = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            tokens[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        with torch.inference_mode():
            logits = model(input_ids=tokens, attention_mask=mask).logits[:, :-1].float()
            picked = torch.log_softmax(logits, dim=-1).gather(-1, tokens[:, 1:, None]).squeeze(-1)
            sums = (picked * mask[:, 1:]).sum(dim=-1).tolist()
        for i, value in zip(batch, sums):
            totals[i] = value
    return totals


def main() -> None:
    model_dir = converted_smollm2()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        ours, reference, lines, values = alternate(
            ROUNDS, lambda: run_fmeval(run_dir), lambda lines: run_reference(model_dir, sentences(lines))
        )
        summary = json.loads((run_dir / "summary.json").read_text())
    ours_values = [l["sent_more_log_probability"] for l in lines] + [l["sent_less_log_probability"] for l in lines]
    worst = max(abs(a - b) for a, b in zip(ours_values, values))
    by_sum = sum(l["sent_more_log_probability"] > l["sent_less_log_probability"] for l in lines)
    by_mean = sum(l["sent_more_log_probability"] / l["sent_more_num_tokens"]
                  > l["sent_less_log_probability"] / l["sent_less_num_tokens"] for l in lines)
    print(f"{len(lines)} pairs; largest log-probability difference from the reference: {worst:.2e}; "
          f"prompt_stereotyping = {summary['dataset_scores'][0]['value']:.3f}")
    print(f"stereotyped pairs: {by_sum} by summed log-probabilities (default), {by_mean} by their mean per token "
          f"(log_probability_reduction=mean, as AWS fmeval's Hugging Face runner)")
    assert len(lines) == 1508 and worst < 1e-3, "fmeval's log-probabilities differ from the reference's"
    result_line("stereotyping_throughput", min(ours), min(reference), cache_hits=0)


if __name__ == "__main__":
    main()
