"""The evaluation engine: batching, concurrency, retries and the response store behind one seam."""
from fmeval.engine.engine import Engine, EngineOptions, Request

__all__ = ["Engine", "EngineOptions", "Request"]
