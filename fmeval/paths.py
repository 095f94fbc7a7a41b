"""Where fmeval keeps its caches. `FMEVAL_CACHE_DIR` moves all of them."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """A sub-directory of the user cache directory (created on demand by callers)."""
    base = os.environ.get("FMEVAL_CACHE_DIR")
    if not base:
        from platformdirs import user_cache_dir

        base = user_cache_dir("fmeval")
    return Path(base).joinpath(*parts)
