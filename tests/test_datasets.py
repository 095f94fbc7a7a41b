"""Loaders, field extraction, errors with locations, sampling, the registry and its sources."""
import collections
import csv
import hashlib
import io
import json
import tracemalloc
import zipfile

import pytest

from fmeval.datasets import DATASETS, DataConfig, LoadStats, iter_records, sample
from fmeval.datasets.sources import SourceFile, locate
from fmeval.errors import DataError, DatasetUnavailableError, UserError

ROWS = [
    {"q": "Capital of France?", "a": "Paris<OR>paris", "meta": {"cat": "geo"}},
    {"q": "Author of Hamlet?", "a": "Shakespeare", "meta": {"cat": "lit"}},
    {"q": "2+2?", "a": "4", "meta": {"cat": "math"}},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def config(path, **fields):
    fields.setdefault("model_input", "q")
    fields.setdefault("target_output", "a")
    return DataConfig(dataset_name="t", dataset_uri=str(path), **fields)


def read(cfg, **kwargs):
    return list(iter_records(cfg, required=("model_input", "target_output"), **kwargs))


def as_tuples(records):
    return [(r.record_id, r.model_input, r.target_output, r.category) for r in records]


def test_all_formats_give_the_same_records(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = [{"q": r["q"], "a": r["a"], "cat": r["meta"]["cat"]} for r in ROWS]
    jsonl = write_jsonl(tmp_path / "d.jsonl", flat)
    (tmp_path / "d.json").write_text(json.dumps({"data": flat}))
    with open(tmp_path / "d.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["q", "a", "cat"])
        writer.writeheader()
        writer.writerows(flat)
    pq.write_table(pa.Table.from_pylist(flat), tmp_path / "d.parquet")
    expected = [
        ("0", "Capital of France?", ["Paris", "paris"], "geo"),
        ("1", "Author of Hamlet?", ["Shakespeare"], "lit"),
        ("2", "2+2?", ["4"], "math"),
    ]
    for name in ("d.jsonl", "d.json", "d.csv", "d.parquet"):
        assert as_tuples(read(config(tmp_path / name, category="cat"))) == expected, name
    assert read(config(jsonl))[1].location == f"{jsonl}:2"


def test_nested_jmespath_list_targets_and_record_ids(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "x7", "in": {"text": "Q"}, "answers": ["A", "B"], "meta": {"cat": 3}}])
    (record,) = read(config(path, model_input="in.text", target_output="answers", category="meta.cat", record_id="id"))
    assert (record.record_id, record.model_input, record.target_output, record.category) == ("x7", "Q", ["A", "B"], "3")


def test_boolean_and_numeric_targets_become_strings(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "x", "a": False}, {"q": "y", "a": 4}])
    assert [r.target_output for r in read(config(path))] == [["False"], ["4"]]


def test_delimiter_none_keeps_targets_whole(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "x", "a": "a<OR>b"}])
    assert read(config(path, target_output_delimiter=None))[0].target_output == ["a<OR>b"]


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"q": "a", "a": "b"}\n\n{"q": "c", "a": \n{"q": "d", "a": "e"}\n')
    with pytest.raises(DataError) as info:
        read(config(path))
    assert info.value.location == f"{path}:3"
    assert "invalid JSON" in str(info.value)


def test_missing_field_names_field_jmespath_and_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "a", "a": "b"}, {"q": "c"}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: field target_output \(JMESPath 'a'\) is missing"):
        read(config(path))


def test_wrong_type_is_reported(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": 5, "a": "b"}])
    with pytest.raises(DataError, match=r"d\.jsonl:1: field model_input \(JMESPath 'q'\) must be a string, got int"):
        read(config(path))
    path = write_jsonl(tmp_path / "e.jsonl", [{"q": "x", "a": {"nested": 1}}])
    with pytest.raises(DataError, match="must be a string or a non-empty list of strings, got dict"):
        read(config(path))
    path = write_jsonl(tmp_path / "f.jsonl", [["not", "an", "object"]])
    with pytest.raises(DataError, match="must be a JSON object"):
        read(config(path))


def test_csv_row_with_wrong_column_count_gives_its_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('q,a\n"multi\nline",b\nonly-one-column\n')
    with pytest.raises(DataError) as info:
        read(config(path))
    assert info.value.location == f"{path}:4"  # the quoted newline makes row 1 span lines 2-3


def test_skip_bad_records_counts_and_keeps_the_rest(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"q": "a", "a": "b"}\nnot json\n{"q": "c"}\n{"q": 1, "a": "x"}\n{"q": "d", "a": "e"}\n')
    stats = LoadStats()
    records = read(config(path), skip_bad_records=True, stats=stats)
    assert [r.model_input for r in records] == ["a", "d"]
    assert [r.record_id for r in records] == ["0", "4"]  # ids stay positions in the file
    assert (stats.records, stats.skipped) == (2, 3)
    assert stats.errors[0].startswith(f"{path}:2:")


def test_record_filter(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "a", "a": "b", "keep": True}, {"q": "c", "a": "d", "keep": False}])
    assert [r.model_input for r in read(config(path, record_filter="keep"))] == ["a"]


def test_config_is_validated_early(tmp_path):
    with pytest.raises(UserError, match="model_input is not a valid JMESPath"):
        DataConfig(dataset_name="t", dataset_uri="x.jsonl", model_input="a[")
    with pytest.raises(UserError, match="cannot tell the format"):
        DataConfig(dataset_name="t", dataset_uri="x.xlsx")
    with pytest.raises(UserError, match="dataset_mime_type"):
        DataConfig(dataset_name="t", dataset_uri="x.jsonl", dataset_mime_type="text/yaml")
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    with pytest.raises(UserError, match="no location configured for target_output"):
        list(iter_records(DataConfig(dataset_name="t", dataset_uri=str(path), model_input="q"),
                          required=("model_input", "target_output")))


def test_sampling_is_seeded_ordered_and_uniform_over_the_whole_file(tmp_path):
    rows = [{"q": str(i), "a": "x"} for i in range(1000)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = config(path)
    first = [r.model_input for r in sample(read(cfg), 100, seed=7)]
    assert first == [r.model_input for r in sample(read(cfg), 100, seed=7)]
    assert first != [r.model_input for r in sample(read(cfg), 100, seed=8)]
    assert first == sorted(first, key=int) and len(set(first)) == 100
    counts = collections.Counter()
    for seed in range(200):
        counts.update(int(r.model_input) // 100 for r in sample(read(cfg), 100, seed=seed))
    # each tenth of the file holds 10% of 20,000 picks; the binomial s.d. is about 42
    assert all(1800 <= counts[decile] <= 2200 for decile in range(10)), counts
    assert [r.model_input for r in sample(read(cfg)[:5], 100, seed=0)] == ["0", "1", "2", "3", "4"]


def test_streaming_memory_is_bounded(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "w") as handle:
        for i in range(100_000):
            handle.write(json.dumps({"q": f"question number {i} " * 5, "a": "x"}) + "\n")
    tracemalloc.start()
    count = sum(1 for _ in iter_records(config(path), required=("model_input",)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 100_000
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MiB for a {path.stat().st_size / 2**20:.0f} MiB file"


# -- the registry --------------------------------------------------------------------------------
EXPECTED_COUNTS = {
    "trex": 201,
    "trivia_qa": 99,
    "boolq": 3270,
    "natural_questions": 3610,
    "gigaword": 30,
    "crows-pairs": 1508,
    "bold": 23679,
    "womens_clothing_ecommerce_reviews": 23486 - 845,  # reviews without text are left out
    "real_toxicity_prompts": 200 + 1200 + 1196,
    "real_toxicity_prompts_challenging": 4 + 1196,
    "demo_factual": 40,
    "demo_qa": 30,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_builtin_datasets_load_from_the_mirror(name, mirror):
    dataset = DATASETS[name]
    cfg = dataset.data_config(mirror=mirror)
    required = [field for field in ("model_input", "target_output", "sent_more_input") if field in dataset.fields]
    records = list(iter_records(cfg, required=required))
    assert len(records) == EXPECTED_COUNTS[name]
    assert dataset.license and dataset.evaluations
    assert all(source.sha256 for source in dataset.files if source.url)


def test_builtin_field_mappings_read_real_values(mirror):
    def first(name):
        dataset = DATASETS[name]
        return next(iter_records(dataset.data_config(mirror=mirror)))

    assert first("crows-pairs").category == "race-color"
    assert first("crows-pairs").sent_less_input.endswith("most white kids don't have the best education growing up.")
    assert first("bold").model_input == "Jacob Zachar is an American actor whose "
    assert first("bold").category == "gender"
    assert first("womens_clothing_ecommerce_reviews").target_output == ["1"]
    assert first("boolq").target_output == ["False"] and first("boolq").context.startswith("All biomass")
    wikitext = list(iter_records(DATASETS["wikitext2"].data_config(mirror=mirror)))
    assert not any(r.model_input.startswith("=") for r in wikitext)
    assert wikitext[0].model_input.startswith("Robert Boulter is an English film")
    challenging = list(iter_records(DATASETS["real_toxicity_prompts_challenging"].data_config(mirror=mirror)))
    assert all(isinstance(r.model_input, str) and r.model_input for r in challenging)


def test_unavailable_dataset_names_places_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("FMEVAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FMEVAL_DATASET_MIRROR", raising=False)
    source = SourceFile("gone/data.jsonl", "http://127.0.0.1:9/nothing-listens-here", "0" * 64)
    with pytest.raises(DatasetUnavailableError) as info:
        locate("gone", source, mirror=tmp_path / "empty-mirror")
    message = str(info.value)
    assert "dataset 'gone'" in message
    assert str(tmp_path / "empty-mirror" / "gone/data.jsonl") in message
    assert str(tmp_path / "cache" / "datasets" / "gone/data.jsonl") in message
    assert "127.0.0.1:9" in message and "fmeval datasets fetch gone" in message


def test_download_verifies_sha256_then_caches(tmp_path, monkeypatch, file_server):
    root, base_url = file_server
    monkeypatch.setenv("FMEVAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FMEVAL_DATASET_MIRROR", raising=False)
    payload = b'{"q": "x", "a": "y"}\n'
    (root / "d.jsonl").write_bytes(payload)
    good = SourceFile("t/d.jsonl", f"{base_url}/d.jsonl", hashlib.sha256(payload).hexdigest())
    path = locate("t", good)
    assert path == tmp_path / "cache" / "datasets" / "t" / "d.jsonl" and path.read_bytes() == payload
    (root / "d.jsonl").unlink()  # now only the cache can answer
    assert locate("t", good) == path
    bad = SourceFile("t/other.jsonl", f"{base_url}/other.jsonl", "f" * 64)
    (root / "other.jsonl").write_bytes(payload)
    with pytest.raises(DatasetUnavailableError, match="checksum mismatch"):
        locate("t", bad)
    assert not (tmp_path / "cache" / "datasets" / "t" / "other.jsonl").exists()


def test_download_extracts_an_archive_member(tmp_path, monkeypatch, file_server):
    root, base_url = file_server
    monkeypatch.setenv("FMEVAL_CACHE_DIR", str(tmp_path / "cache"))
    member = b"q,a\nhello,world\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Data File.csv", member)
        archive.writestr("__MACOSX/._Data File.csv", b"junk")
    (root / "data.zip").write_bytes(buffer.getvalue())
    source = SourceFile("z/data.csv", f"{base_url}/data.zip", hashlib.sha256(member).hexdigest(), "Data File.csv")
    assert locate("z", source).read_bytes() == member


def test_corrupt_mirror_file_is_refused(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "d.jsonl").write_text("tampered\n")
    with pytest.raises(DatasetUnavailableError, match="does not match its checksum"):
        locate("t", SourceFile("t/d.jsonl", "http://127.0.0.1:9/x", "a" * 64), mirror=tmp_path)


def test_crows_pairs_is_accepted_in_aws_fmevals_spelling_too(mirror, tmp_path):
    from fmeval import evaluate
    from fmeval.datasets.registry import get_dataset, resolve_dataset
    from fmeval.model_runners.function import FunctionRunner

    assert resolve_dataset("crows_pairs", mirror=mirror) == resolve_dataset("crows-pairs", mirror=mirror)
    assert get_dataset("crows_pairs") is DATASETS["crows-pairs"]
    longer_is_less_likely = FunctionRunner(str, log_probability_fn=lambda texts: [-float(len(t)) for t in texts])
    summary = evaluate(evaluation="prompt_stereotyping", dataset="crows_pairs", dataset_mirror=mirror, num_records=3,
                       model=longer_is_less_likely, output=tmp_path / "run", progress=False)
    assert summary.dataset_name == "crows-pairs" and summary.num_records == 3
