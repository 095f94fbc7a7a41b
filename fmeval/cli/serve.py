"""`fmeval serve`: a model behind an OpenAI-compatible API (for capture, monitoring and any client)."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK, check_listen_address


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    serve = commands.add_parser(
        "serve", help="serve a model (e.g. the bundled smollm2) behind an OpenAI-compatible API",
        description="POST /v1/chat/completions and /v1/completions, GET /v1/models. Requests that arrive "
        "together are answered in one batch.")
    serve.add_argument("model", help="a model spec, as for `fmeval run --model` (e.g. smollm2)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--name", help="the model name clients see (default: the spec)")
    serve.add_argument("--max-new-tokens", type=int, help="the longest answer, in tokens")
    serve.add_argument("--batch-size", type=int, help="the most prompts in one batch")
    serve.add_argument("--batch-window-ms", type=float, default=10.0,
                       help="how long the first request of a batch waits for others (default 10 ms)")
    serve.add_argument("--explain", metavar="CONFIG",
                       help="serve MODEL (a joblib file of a tabular model) at POST /invocations with KernelSHAP "
                       "attributions for each prediction, per a ClarifyExplainerConfig JSON file (needs --trust-model)")
    serve.add_argument("--trust-model", action="store_true", help="allow loading the --explain model's joblib file")
    return {"serve": run_serve}


def run_serve(args: argparse.Namespace) -> int:
    if args.explain:
        from fmeval.bias.models import from_file
        from fmeval.explain.online import serve_explained

        serve_explained(from_file(args.model, trusted=args.trust_model), args.explain, name=args.model, host=args.host,
                        port=args.port, batch_window_ms=args.batch_window_ms)
        return EXIT_OK
    from fmeval.model_runners import load_runner
    from fmeval.model_runners.server import serve

    check_listen_address(args.host, args.port)
    options = {key: value for key, value in (("max_new_tokens", args.max_new_tokens), ("batch_size", args.batch_size))
               if value is not None}
    serve(load_runner(args.model, **options), model_name=args.name or args.model, host=args.host, port=args.port,
          batch_window_ms=args.batch_window_ms)
    return EXIT_OK
