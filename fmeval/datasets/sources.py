"""Find a built-in dataset's files: a local mirror, then the user cache, then a verified download."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fmeval.errors import DatasetUnavailableError, UserError
from fmeval.paths import cache_dir

logger = logging.getLogger(__name__)

MIRROR_ENV = "FMEVAL_DATASET_MIRROR"
PACKAGE_DATA = Path(__file__).parent / "data"
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class SourceFile:
    """One file of a built-in dataset."""

    path: str
    """Where it sits under a mirror or the cache (e.g. `trex/fmeval_trex_sample.jsonl`)."""
    url: str | None
    """Upstream URL; None for files shipped inside the package."""
    sha256: str | None
    """Checksum of the file as read (the extracted member, for archives). None: not published."""
    archive_member: str | None = None
    """For a URL that serves a zip archive: the member that is the data file."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:  # unreadable (permissions), a directory, a device error: the user's file
        raise UserError(f"{path}: cannot read the dataset: {exc.strerror or exc}") from None
    return digest.hexdigest()


class _ChecksumMismatch(Exception):
    pass


def _verified(path: Path, source: SourceFile) -> Path:
    if source.sha256 is not None:
        actual = sha256_of(path)
        if actual != source.sha256:
            raise _ChecksumMismatch(f"{path} has sha256 {actual}, expected {source.sha256}")
    return path


def _download(source: SourceFile, target: Path) -> Path:
    assert source.url is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as staging:
        fetched = Path(staging) / "fetched"
        logger.info("downloading %s", source.url)
        with urllib.request.urlopen(source.url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(fetched, "wb") as out:
            shutil.copyfileobj(response, out)
        data = fetched
        if source.archive_member is not None:
            data = Path(staging) / "member"
            with zipfile.ZipFile(fetched) as archive, archive.open(source.archive_member) as member:
                with open(data, "wb") as out:
                    shutil.copyfileobj(member, out)
        _verified(data, source)
        if source.sha256 is None:
            logger.warning("%s has no published checksum; its sha256 is %s", source.url, sha256_of(data))
        os.replace(data, target)  # atomic, so a concurrent reader never sees half a file
    return target


def locate(dataset_name: str, source: SourceFile, *, mirror: str | os.PathLike[str] | None = None) -> Path:
    """The local path of one file, fetching it if needed; `DatasetUnavailableError` says where it looked."""
    if source.url is None:
        return _verified(PACKAGE_DATA / source.path, source)
    tried: list[str] = []
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror:
        candidate = Path(mirror) / source.path
        if candidate.is_file():
            try:
                return _verified(candidate, source)
            except _ChecksumMismatch as exc:
                raise DatasetUnavailableError(
                    f"dataset {dataset_name!r}: the mirror copy does not match its checksum: {exc}"
                ) from exc
        tried.append(f"mirror {candidate} (not found)")
    else:
        tried.append(f"mirror (none set: {MIRROR_ENV} or --dataset-mirror)")
    cached = cache_dir("datasets", source.path)
    if cached.is_file():
        try:
            return _verified(cached, source)
        except _ChecksumMismatch as exc:
            logger.warning("discarding a corrupt cached file: %s", exc)
            cached.unlink()
    tried.append(f"cache {cached} (not found)")
    try:
        return _download(source, cached)
    except _ChecksumMismatch as exc:
        tried.append(f"download {source.url} (checksum mismatch: {exc})")
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        tried.append(f"download {source.url} ({type(exc).__name__}: {exc})")
    raise DatasetUnavailableError(
        f"dataset {dataset_name!r} is not available. Tried: " + "; ".join(tried) + ". "
        f"To fix: point {MIRROR_ENV} (or --dataset-mirror) at a directory holding {source.path}, "
        f"or run `fmeval datasets fetch {dataset_name}` where the network is reachable."
    )
