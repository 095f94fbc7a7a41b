"""Bias metrics block by block (data larger than memory): the same values as the in-memory
analysis of the same rows, whatever the blocks."""
import json

import numpy as np
import pandas as pd
import pytest

from fmeval.bias.analyze import analyze
from fmeval.bias.scale import ColumnSummary, streamed_bias
from fmeval.cli import main
from fmeval.errors import UserError

CONFIG = {
    "label": "outcome", "label_values_or_threshold": ["yes", "maybe"], "group_variable": "region",
    "predicted_label_name_or_index": "predicted",
    "facet": [{"name_or_index": "sex", "value_or_threshold": ["F"]}, {"name_or_index": "income", "value_or_threshold": [55]},
              {"name_or_index": "plan"}],
    "methods": {"pre_training_bias": {"methods": "all"}, "post_training_bias": {"methods": "all"}},
}


def table(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n, p=[0.4, 0.6])
    outcome = np.where(rng.random(n) < np.where(sex == "F", 0.35, 0.5), "yes", rng.choice(["no", "maybe"], n))
    frame = pd.DataFrame({
        "sex": sex, "age": rng.integers(18, 80, n), "plan": rng.choice(["basic", "plus", "pro"], n),
        "region": rng.choice(["north", "south", "east"], n), "outcome": outcome,
        "predicted": np.where(rng.random(n) < 0.8, outcome, rng.choice(["yes", "no", "maybe"], n)),
        "income": rng.normal(50, 10, n),
    })
    frame.loc[rng.choice(n, 25, replace=False), "outcome"] = None  # dropped and counted, as in memory
    return frame


def write_parts(frame, folder, parts=4):
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


def metrics(result):
    return {(stage, facet, group["value_or_threshold"], m["name"]): (m["value"], m.get("error"))
            for stage in ("pre_training_bias_metrics", "post_training_bias_metrics")
            for facet, groups in result[stage]["facets"].items() for group in groups for m in group["metrics"]}


def assert_same(streamed, in_memory):
    ours, reference = metrics(streamed), metrics(in_memory)
    assert set(ours) == set(reference) and len(ours) == 5 * 21
    for key, (value, error) in reference.items():
        if key[-1] == "FT":
            assert ours[key] == (None, "FT needs every row's features at once; the streaming path does not compute it")
        elif isinstance(value, float):
            assert ours[key][0] == pytest.approx(value, abs=1e-12), key
        else:
            assert ours[key] == (value, error), key
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        assert streamed[stage]["label_value_or_threshold"] == in_memory[stage]["label_value_or_threshold"]
    assert streamed["rows_with_missing_values"]["count"] == in_memory["rows_with_missing_values"]["count"] == 25


def test_blocks_give_the_in_memory_values(tmp_path):
    frame = table()
    folder = write_parts(frame, tmp_path / "parts")
    in_memory = analyze(CONFIG, frame, tmp_path / "memory")
    blocks = []
    streamed = streamed_bias(CONFIG, folder, block_rows=700, on_block=lambda: blocks.append(1))
    assert len(blocks) == 2 * (4 * 3)  # two passes over 4 files of 1,500 rows in blocks of 700
    assert_same(streamed, in_memory)
    groups = [g["value_or_threshold"] for g in streamed["pre_training_bias_metrics"]["facets"]["income"]]
    assert groups == [f"(55, {frame.income.max()}]"]  # the interval's top is the whole column's maximum
    assert [g["value_or_threshold"] for g in streamed["pre_training_bias_metrics"]["facets"]["plan"]] == [
        "basic", "plus", "pro"]


def test_cli_stream_over_a_glob_of_csv_files(tmp_path, capsys):
    frame = table(n=3000, seed=1)
    folder = tmp_path / "csv"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_csv(folder / f"part-{i}.csv", index=False)
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    assert main(["analyze", "--config", str(tmp_path / "config.json"), "--data", str(folder / "part-*.csv"),
                 "--stream", "-o", str(tmp_path / "out")]) == 0
    streamed = json.loads((tmp_path / "out" / "analysis.json").read_text())
    in_memory = analyze(CONFIG, pd.concat([pd.read_csv(p) for p in sorted(folder.glob("*.csv"))]), tmp_path / "memory")
    assert_same(streamed, in_memory)
    assert "post-training, sex=F: AD=" in capsys.readouterr().out


def test_whole_data_checks_still_apply(tmp_path):
    folder = write_parts(table(n=800), tmp_path / "parts", parts=2)
    with pytest.raises(UserError, match=r"value\(s\) X never occur in column 'sex'"):
        streamed_bias({**CONFIG, "facet": [{"name_or_index": "sex", "value_or_threshold": ["X"]}]}, folder)
    with pytest.raises(UserError, match="every row has the same outcome"):
        streamed_bias({**CONFIG, "label_values_or_threshold": ["yes", "no", "maybe"]}, folder)
    with pytest.raises(UserError, match="needs predicted_label_name_or_index or probability_name_or_index"):
        streamed_bias({key: value for key, value in CONFIG.items() if key != "predicted_label_name_or_index"}, folder)
    with pytest.raises(UserError, match="no Parquet or CSV files"):
        streamed_bias(CONFIG, tmp_path / "nothing-here")


def test_column_summaries_merge_like_the_whole_column():
    values = pd.Series(np.arange(100) % 7)
    merged = ColumnSummary.of(values[:30]) + ColumnSummary.of(values[30:])
    whole = ColumnSummary.of(values)
    assert (merged.present, merged.maximum, merged.distinct, merged.value_kind) == (
        whole.present, whole.maximum, whole.distinct, "int")
    assert merged.continuous(None, None, "x") is True  # 7 distinct of 100 >= 5%: smclarify's rule
    text = ColumnSummary.of(pd.Series(["1", "2", "3"])) + ColumnSummary.of(pd.Series(["4", "x"]))
    assert text.value_kind == "text" and text.all_integral_text is False
