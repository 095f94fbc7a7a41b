"""Datasets: the built-in registry, custom files (JSON Lines, JSON, CSV, Parquet), streaming and sampling."""
from fmeval.datasets.config import DataConfig
from fmeval.datasets.loader import LoadStats, iter_records, sample
from fmeval.datasets.record import Record
from fmeval.datasets.registry import DATASETS, BuiltinDataset, get_dataset

__all__ = ["DATASETS", "BuiltinDataset", "DataConfig", "LoadStats", "Record", "get_dataset", "iter_records", "sample"]
