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
| `package.module:Class` | a `ModelRunner` subclass, built with the options |
| `package.module:function` | a function that returns a `ModelRunner`, called with the options |
| `PREFIX:NAME` | the runner registered with `@register_runner("PREFIX")`, given NAME and the options |

Packages that declare an `fmeval` entry point (see `fmeval.plugins`) register their prefixes on
first use, in every process (Ray workers too).
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from fmeval.errors import UserError
from fmeval.model_runners.base import Capabilities, LogProbabilityUnsupported, ModelOutput, ModelRunner
from fmeval.plugins import import_spec, is_module_spec, load_plugins

__all__ = ["Capabilities", "LogProbabilityUnsupported", "ModelOutput", "ModelRunner", "load_runner",
           "register_runner"]

ERR_FUNCTION_SPEC = "function model spec must look like 'function:package.module:callable', got {spec!r}"
ERR_FUNCTION_CLASS = ("model {spec!r}: function: takes a function from prompt to output, and {name} is a class; "
                      "for a ModelRunner subclass give the spec {plain!r}")
ERR_FUNCTION_FACTORY = ("model {spec!r}: function: takes a function from prompt to output, and {name} builds a "
                        "model runner; give the spec {plain!r} to build the runner with it")

T = TypeVar("T")
RUNNERS: dict[str, Callable[..., ModelRunner]] = {}
"""Runner factories registered with `@register_runner`, by prefix (without the colon)."""


HOSTED = {
    "openai:": ("fmeval.model_runners.openai_compatible", "OpenAICompatibleRunner"),
    "bedrock:": ("fmeval.model_runners.aws", "BedrockRunner"),
    "sagemaker:": ("fmeval.model_runners.aws", "SageMakerRunner"),
}


def register_runner(prefix: str) -> Callable[[T], T]:
    """Make `PREFIX:NAME` model specs build this runner: a `ModelRunner` subclass (or a function
    returning one) called as `factory(NAME, **options)`. `@register_runner("echo")`."""
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise TypeError(f"a runner prefix must be an identifier (e.g. 'echo'), got {prefix!r}")
    if prefix in ("function", "hf", "gguf", "http", "https") or f"{prefix}:" in HOSTED:
        raise ValueError(f"{prefix!r} is a built-in model spec prefix; choose another")

    def register(factory: T) -> T:
        if not callable(factory):
            raise TypeError(f"register_runner({prefix!r}) decorates a class or a function, got {factory!r}")
        RUNNERS[prefix] = factory  # type: ignore[assignment]
        return factory

    return register


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
        runner = factory(*arguments, **options)
    except TypeError as exc:
        raise UserError(f"model {spec!r}: bad option: {exc}") from exc
    if not isinstance(runner, ModelRunner):
        raise UserError(f"model {spec!r} built {type(runner).__name__}, not a model runner (subclass "
                        f"fmeval.ModelRunner)")
    return runner


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
    registered = _registered(spec)
    if registered is not None:
        return registered
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
        plain = spec[len("function:") :]
        if inspect.isclass(fn):
            raise UserError(ERR_FUNCTION_CLASS.format(spec=spec, name=attribute, plain=plain))
        if _builds_runner(fn):
            raise UserError(ERR_FUNCTION_FACTORY.format(spec=spec, name=attribute, plain=plain))
        from fmeval.model_runners.function import FunctionRunner

        options.setdefault("name", spec)
        return FunctionRunner, (fn,)
    for prefix in ("hf:", "gguf:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix) :]
            break
    else:
        if ":" in spec.split("/")[0] and not Path(spec).exists():
            raise UserError(f"unknown model type in {spec!r}; see `fmeval run --help` for model specs"
                            + (f" (registered prefixes: {', '.join(RUNNERS)})" if RUNNERS else ""))
    return HuggingFaceRunner, (spec,)


def _registered(spec: str) -> tuple[Callable[..., ModelRunner], tuple[Any, ...]] | None:
    """A `PREFIX:NAME` of `@register_runner` (plugins included), or a `package.module:attribute`."""
    prefix, colon, name = spec.partition(":")
    if not colon or prefix in ("function", "hf", "gguf") or Path(spec).exists():
        return None
    if prefix.isidentifier():
        if prefix not in RUNNERS:
            load_plugins()
        if prefix in RUNNERS:
            return RUNNERS[prefix], (name,)
    if is_module_spec(spec) and ("." in prefix or importlib.util.find_spec(prefix) is not None):
        return _runner_factory(import_spec(spec, what="model"), spec), ()
    return None


def _builds_runner(fn: Callable[..., Any]) -> bool:
    """Whether `fn` is a runner factory: registered as one, or annotated to return a runner."""
    if fn in RUNNERS.values():
        return True
    try:
        returns = inspect.signature(fn).return_annotation
    except (TypeError, ValueError):
        return False
    if isinstance(returns, str):  # postponed annotations
        return returns.rsplit(".", 1)[-1] in {"ModelRunner", *(c.__name__ for c in _runner_classes())}
    return inspect.isclass(returns) and issubclass(returns, ModelRunner)


def _runner_classes() -> list[type]:
    found, pending = [], [ModelRunner]
    while pending:
        for cls in pending.pop().__subclasses__():
            found.append(cls)
            pending.append(cls)
    return found


def _runner_factory(value: Any, spec: str) -> Callable[..., ModelRunner]:
    if inspect.isclass(value) and not issubclass(value, ModelRunner):
        raise UserError(f"model {spec!r} is the class {value.__name__}, not a ModelRunner subclass; subclass "
                        f"fmeval.ModelRunner, or give a plain function as 'function:{spec}'")
    if not callable(value):
        raise UserError(f"model {spec!r} is not a class or a function, but {type(value).__name__}")
    return value
