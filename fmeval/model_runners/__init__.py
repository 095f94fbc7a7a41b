"""Model runners: one batch-first `predict` interface over every kind of model.

`load_runner(spec)` turns a model spec, as given on the command line or in a config, into a runner:

| spec | runner |
|---|---|
| `smollm2` (or `default`) | the bundled SmolLM2-135M-Instruct |
| `path/to/model.gguf`, `gguf:path` | a GGUF checkpoint through transformers |
| `path/to/dir`, `hf:<dir or hub id>` | a Hugging Face causal LM |
| `function:package.module:callable` | a Python callable |
| `openai:MODEL` | an OpenAI-compatible server (`base_url`, `api`, `api_key_env`, ...) |
| `bedrock:MODEL_ID` | Amazon Bedrock (Converse, or invoke_model with `content_template`) |
| `sagemaker:ENDPOINT` | a SageMaker endpoint (`content_template`, `output`, ...) |
| `http://...`, `https://...` | any JSON endpoint (`content_template`, `output`, `api_key_env`, ...) |
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Mapping

from fmeval.errors import UserError
from fmeval.model_runners.base import Capabilities, LogProbabilityUnsupported, ModelOutput, ModelRunner

__all__ = ["Capabilities", "LogProbabilityUnsupported", "ModelOutput", "ModelRunner", "load_runner"]

ERR_FUNCTION_SPEC = "function model spec must look like 'function:package.module:callable', got {spec!r}"


HOSTED = {
    "openai:": ("fmeval.model_runners.openai_compatible", "OpenAICompatibleRunner"),
    "bedrock:": ("fmeval.model_runners.aws", "BedrockRunner"),
    "sagemaker:": ("fmeval.model_runners.aws", "SageMakerRunner"),
}


def load_runner(spec: str, *, defaults: Mapping[str, Any] | None = None, **options: Any) -> ModelRunner:
    """Build the runner a model spec names; `options` go to its constructor (e.g. `max_new_tokens`).
    `defaults` (e.g. the run's seed, the engine's concurrency) go to runners that take them,
    unless `options` say otherwise."""
    factory, arguments = _factory(spec, options)
    accepted = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = [name for name in options if name not in accepted]
        if unknown:
            raise UserError(f"model {spec!r} does not take {', '.join(map(_option_and_takers, unknown))}")
    for name, value in (defaults or {}).items():
        if name in accepted and value is not None:
            options.setdefault(name, value)
    try:
        return factory(*arguments, **options)
    except TypeError as exc:
        raise UserError(f"model {spec!r}: bad option: {exc}") from exc


def _option_and_takers(name: str) -> str:
    """An option with its flag, and the model specs whose runners take it."""
    takers = [f"{prefix}..." for prefix, (module_name, class_name) in HOSTED.items()
              if name in inspect.signature(getattr(importlib.import_module(module_name), class_name)).parameters]
    from fmeval.model_runners.http_endpoint import HttpEndpointRunner

    if name in inspect.signature(HttpEndpointRunner).parameters:
        takers.append("an http(s):// endpoint URL")
    flag = f"{name} (--{name.replace('_', '-')})"
    return f"{flag}, which is for {' or '.join(takers)} models" if takers else flag


def _factory(spec: str, options: dict[str, Any]) -> tuple[Callable[..., ModelRunner], tuple[Any, ...]]:
    """The runner class (or function) a spec names, and its positional arguments."""
    if spec.startswith(("http://", "https://")):
        from fmeval.model_runners.http_endpoint import HttpEndpointRunner

        return HttpEndpointRunner, (spec,)
    for prefix, (module_name, class_name) in HOSTED.items():
        if spec.startswith(prefix):
            if not spec[len(prefix) :]:
                raise UserError(f"model spec {spec!r} needs a name after {prefix!r}")
            return getattr(importlib.import_module(module_name), class_name), (spec[len(prefix) :],)
    from fmeval.model_runners.huggingface import HuggingFaceRunner

    if spec in ("smollm2", "default"):
        from fmeval.model_runners.default import smollm2_gguf_path

        options.setdefault("chat_template", True)  # SmolLM2-Instruct answers well only in its chat format
        return HuggingFaceRunner, (smollm2_gguf_path(),)
    if spec.startswith("function:"):
        module_name, _, attribute = spec[len("function:") :].partition(":")
        if not module_name or not attribute:
            raise UserError(ERR_FUNCTION_SPEC.format(spec=spec))
        try:
            fn = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"cannot load model function {spec!r}: {exc}") from exc
        from fmeval.model_runners.function import FunctionRunner

        options.setdefault("name", spec)
        return FunctionRunner, (fn,)
    for prefix in ("hf:", "gguf:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix) :]
            break
    else:
        if ":" in spec.split("/")[0] and not Path(spec).exists():
            raise UserError(f"unknown model type in {spec!r}; see `fmeval run --help` for model specs")
    return HuggingFaceRunner, (spec,)
