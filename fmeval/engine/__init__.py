"""The evaluation engine: batching, concurrency, retries and the response cache behind one seam."""
from fmeval.engine.engine import Engine, EngineOptions

__all__ = ["Engine", "EngineOptions"]
