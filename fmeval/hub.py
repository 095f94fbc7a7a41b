"""Loading from the Hugging Face hub without hanging: offline machines fail at once."""
from __future__ import annotations

import os
import socket
from pathlib import Path

HUB_HOST = "huggingface.co"


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """One quick connection attempt. huggingface_hub itself retries each file for about 20 s."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def needs_hub(model: str) -> bool:
    """Whether loading `model` would have to download it: not a local path, not in the local HF cache."""
    if Path(model).exists():
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        return not isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # an id the hub library cannot parse: let the loader report it
        return True
