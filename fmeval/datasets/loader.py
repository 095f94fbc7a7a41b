"""Stream records out of dataset files, with JMESPath fields, validation and seeded sampling.

Memory stays bounded: files are read record by record (JSON documents, which cannot be
streamed with the standard library, are the exception), and sampling keeps only the sample.
"""
from __future__ import annotations

import array
import itertools
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from fmeval.datasets.config import DataConfig
from fmeval.datasets.readers import READERS
from fmeval.datasets.record import Record
from fmeval.errors import DataError, UserError

MAX_REPORTED_ERRORS = 20
TEXT_FIELDS = ("model_input", "context", "sent_more_input", "sent_less_input", "model_output")


@dataclass
class LoadStats:
    """What loading saw: records kept, and bad records skipped (with the first few reasons)."""

    records: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def skip(self, error: DataError) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(str(error))


# -- fields -------------------------------------------------------------------------------------
def _coerce(name: str, value: Any, expression: str, location: str, delimiter: str | None) -> Any:
    def wrong(expected: str) -> DataError:
        return DataError(
            location, f"field {name} (JMESPath {expression!r}) must be {expected}, got {type(value).__name__}"
        )

    if name in TEXT_FIELDS:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if name == "target_output":
        if isinstance(value, bool):  # spelled as the built-in templates ask the model to answer
            return [str(value)]
        if isinstance(value, (int, float)):
            return [str(value)]
        if isinstance(value, str):
            targets = value.split(delimiter) if delimiter else [value]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            targets = list(value)
        else:
            raise wrong("a string or a non-empty list of strings")
        # An empty alternative is contained in every output: it would score anything as correct.
        targets = [target for target in targets if target.strip()]
        if not targets:
            raise DataError(location, f"field {name} (JMESPath {expression!r}) has no non-empty target")
        return targets
    if name == "choices":
        if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
            raise wrong("a non-empty list of non-empty strings")
        return list(value)
    # category and record_id
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int)):
        return str(value)
    raise wrong("a string or an integer")


_PLAIN_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _searcher(expression: str) -> Callable[[dict[str, Any]], Any]:
    """JMESPath search; a bare field name is a dictionary lookup, the same answer ten times faster."""
    if _PLAIN_FIELD.fullmatch(expression):
        return lambda record: record.get(expression)
    import jmespath

    return jmespath.compile(expression).search


class _FieldExtractor:
    def __init__(self, config: DataConfig, required: Sequence[str]):
        import jmespath

        locations = config.locations()
        missing = [name for name in required if name not in locations]
        if missing:
            raise UserError(
                f"dataset {config.dataset_name!r} has no location configured for {', '.join(missing)}; "
                f"set it in the DataConfig (a JMESPath into each record)"
            )
        self._required = set(required)
        self._delimiter = config.target_output_delimiter
        self._expressions = {name: (expr, _searcher(expr)) for name, expr in locations.items()}
        self._filter = jmespath.compile(config.record_filter) if config.record_filter else None

    def keep(self, raw: Any) -> bool:
        return self._filter is None or bool(self._filter.search(raw))

    def extract(self, raw: Any, location: str, index: int) -> Record:
        if not isinstance(raw, dict):
            raise DataError(location, f"a record must be a JSON object, got {type(raw).__name__}")
        values: dict[str, Any] = {}
        for name, (expression, search) in self._expressions.items():
            value = search(raw)
            if value is None:
                if name in self._required:
                    raise DataError(location, f"field {name} (JMESPath {expression!r}) is missing")
                continue
            values[name] = _coerce(name, value, expression, location, self._delimiter)
        values.setdefault("record_id", str(index))
        return Record(location=location, **values)


def iter_records(
    config: DataConfig,
    *,
    required: Sequence[str] = (),
    skip_bad_records: bool = False,
    stats: LoadStats | None = None,
) -> Iterator[Record]:
    """Records of the dataset in file order. A bad record raises `DataError` (with `file:line`),
    unless `skip_bad_records`, which counts it in `stats` and goes on."""
    extractor = _FieldExtractor(config, required)
    stats = stats if stats is not None else LoadStats()
    index = 0
    for uri in config.uris:
        reader = READERS.get(config.mime_type_of(uri))
        if reader is None:
            raise UserError(f"no reader for {config.mime_type_of(uri)!r} (file {uri})")
        for location, raw in reader(uri):
            position, index = index, index + 1
            try:
                if isinstance(raw, DataError):
                    raise raw
                if not extractor.keep(raw):
                    continue
                record = extractor.extract(raw, location, position)
            except DataError as exc:
                if not skip_bad_records:
                    raise
                stats.skip(exc)
                continue
            stats.records += 1
            yield record


def unique_ids(records: Iterable[Record], config: DataConfig, **reading: Any) -> Iterator[Record]:
    """`records`, checked to have distinct record ids (resume relies on them) once the last one is
    read. Memory: one 8-byte hash per record; the ids themselves are looked up again only when
    two hashes collide. `reading` re-reads the dataset as `iter_records` does."""
    import numpy as np

    hashes = array.array("q")
    for record in records:
        hashes.append(hash(record.record_id))
        yield record
    values, counts = np.unique(np.frombuffer(hashes, dtype=np.int64), return_counts=True)
    suspects = set(values[counts > 1].tolist())
    if not suspects:
        return
    first: dict[str, str] = {}
    for record in iter_records(config, **reading):
        if hash(record.record_id) in suspects:
            if record.record_id in first:
                raise DataError(record.location, f"duplicate record_id {record.record_id!r} "
                                                 f"(first at {first[record.record_id]}); record ids must be unique")
            first[record.record_id] = record.location


AWS_SEED = 1234
"""AWS fmeval 1.2.3's constants.SEED, the random_state of its pandas sample."""
AWS_MAX_ROWS = 100_000
"""AWS fmeval 1.2.3's constants.MAX_ROWS_TO_TAKE: it samples among the first rows only."""


def sample_like_aws(records: Iterable[Record], num_records: int) -> list[Record]:
    """The records AWS fmeval 1.2.3 evaluates for `num_records`, in its order: it takes the first
    100,000 records and draws `pandas.DataFrame.sample(num_records, random_state=1234)` among them."""
    import pandas as pd

    if num_records < 1:
        raise UserError(f"num_records must be >= 1, got {num_records}")
    first = list(itertools.islice(records, AWS_MAX_ROWS))
    for _ in records:  # read to the end: every record is validated, as for any run
        pass
    picked = pd.Series(range(len(first))).sample(min(num_records, len(first)), random_state=AWS_SEED)
    return [first[position] for position in picked]


def sample(records: Iterable[Record], num_records: int, seed: int) -> list[Record]:
    """A uniform sample of `num_records` over the whole stream, in file order.

    Reservoir sampling (Algorithm R) with a seeded generator: deterministic for a given
    seed and file, memory bounded by `num_records`, and every record is equally likely,
    however long the file (AWS fmeval silently looks only at the first 100k rows).
    """
    if num_records < 1:
        raise UserError(f"num_records must be >= 1, got {num_records}")
    rng = random.Random(seed)
    reservoir: list[tuple[int, Record]] = []
    for position, record in enumerate(records):
        if position < num_records:
            reservoir.append((position, record))
        else:
            slot = rng.randrange(position + 1)
            if slot < num_records:
                reservoir[slot] = (position, record)
    return [record for _, record in sorted(reservoir, key=lambda pair: pair[0])]
