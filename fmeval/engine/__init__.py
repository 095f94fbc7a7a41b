"""The evaluation engine: batching and (later) concurrency, caching and resume behind one seam."""
from fmeval.engine.engine import Engine

__all__ = ["Engine"]
