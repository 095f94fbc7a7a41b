"""A task's documents: a local file, a built-in dataset, or any dataset on the Hugging Face Hub
(through the `datasets` library: its cache, `HF_DATASETS_OFFLINE`, streaming for large splits)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fmeval.errors import DataError, UserError
from fmeval.tasks.config import TaskConfig

HUB_PREFIX = "hf:"
HUB_MIRROR_ENV = "FMEVAL_HUB_MIRROR"
"""A directory of local copies of Hub datasets, each at its id (e.g. cais/mmlu), in the Hub's layout."""
ERR_OFFLINE = (
    "the dataset {path!r} (split {split!r}) is not in the datasets cache and HF_DATASETS_OFFLINE is set: run once "
    "with network access (unset HF_DATASETS_OFFLINE), or give a local copy (a directory in the Hub's layout, "
    "or a file): {reason}"
)
ERR_LOAD = "cannot load the dataset {path!r} (config {name!r}, split {split!r}): {reason}"


def _file_rows(path: str) -> list[dict[str, Any]]:
    from fmeval.datasets.config import DataConfig
    from fmeval.datasets.readers import READERS

    config = DataConfig(dataset_name=Path(path).stem, dataset_uri=path)
    rows = []
    for location, row in READERS[config.mime_type_of(path)](path):
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise DataError(location, f"a document must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def load_split(task: TaskConfig, split: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The documents of one split, in order (the first `limit` when given: streamed from the Hub)."""
    if task.dataset is not None and not task.dataset.startswith(HUB_PREFIX):
        from fmeval.datasets.registry import DATASETS

        if task.dataset in DATASETS:
            uris = DATASETS[task.dataset].data_config().uris
            return [row for uri in uris for row in _file_rows(uri)][:limit]
        path = Path(task.source).parent / task.dataset if task.source else Path(task.dataset)
        if not path.is_file():
            path = Path(task.dataset)
        if not path.is_file():
            raise UserError(f"{task.source}: task {task.task}: dataset {task.dataset!r} is neither a built-in "
                            f"dataset nor a file")
        return _file_rows(str(path))[:limit]
    hub_path = task.dataset.removeprefix(HUB_PREFIX) if task.dataset else task.dataset_path
    return hub_split(hub_path, task.dataset_name, split, revision=task.revision, options=task.dataset_kwargs,
                     limit=limit)  # type: ignore[arg-type]


def hub_split(path: str, name: str | None, split: str, *, revision: str | None = None,
              options: dict[str, Any] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """One split of a Hub dataset (or a local directory in the Hub's layout, or a builder such as
    json with data_files), as plain rows. With `limit`, only that many rows are read, streaming."""
    try:
        import datasets
    except ImportError as exc:
        raise UserError(f"Hub datasets need the datasets library: pip install 'fmeval[tasks]' ({exc})") from exc
    mirror = os.environ.get(HUB_MIRROR_ENV)
    if mirror and (Path(mirror) / path).is_dir():
        path = str(Path(mirror) / path)
    options = dict(options or {})
    if revision is not None:
        options["revision"] = revision
    local = Path(path).is_dir()
    if local or "data_files" in options:  # the datasets cache misses local files changing: read them afresh
        options.setdefault("download_mode", "force_redownload")
        options.setdefault("verification_mode", "no_checks")  # nor do its recorded split sizes
    try:
        if limit is not None and not local:
            stream = datasets.load_dataset(path, name, split=split, streaming=True, **options)
            return [dict(row) for _, row in zip(range(limit), stream)]
        rows = datasets.load_dataset(path, name, split=split, **options)
        return [dict(row) for row in (rows if limit is None else rows.select(range(min(limit, len(rows)))))]
    except Exception as exc:  # the library raises many types (connection, missing config, bad split)
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        if os.environ.get("HF_DATASETS_OFFLINE") in ("1", "ON", "YES", "TRUE", "true", "on", "yes") and not local:
            raise UserError(ERR_OFFLINE.format(path=path, split=split, reason=reason)) from exc
        raise UserError(ERR_LOAD.format(path=path, name=name, split=split, reason=reason)) from exc
