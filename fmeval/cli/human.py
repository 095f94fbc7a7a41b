"""`fmeval human`: rating jobs for your own raters, their web app, and the results as a run."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK, STORE_FLAGS, STORE_OPTIONS, write_output


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    human = commands.add_parser(
        "human", help="human evaluation: rating jobs, the raters' web app, results, agreement",
        description="Build a rating job from runs, serve it to your raters, and turn their ratings into a run "
        "(per-model means with 95% CIs, win rates, inter-rater agreement) that report and compare read.")
    actions = human.add_subparsers(dest="human_command", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="a rating job from one or more runs of the same dataset")
    create.add_argument("--run", action="append", required=True, metavar="RUN",
                        help="run id or output directory; repeat to compare models side by side")
    create.add_argument("--label", action="append", metavar="NAME",
                        help="a name per --run, in order, for its metrics (default: the runs' model names)")
    create.add_argument("--instructions", required=True, metavar="FILE", help="a text file shown to the raters")
    create.add_argument("--rating", required=True, metavar="KINDS",
                        help="comma-separated: thumbs, likert:N, ranking, free-text")
    create.add_argument("--raters", type=int, required=True, help="how many raters (each gets an invite link)")
    create.add_argument("--per-item", type=int, required=True, help="ratings per item, each by a different rater")
    create.add_argument("--seed", type=int, default=0, help="seed of the assignment and the output order")
    create.add_argument("--title", help="shown at the top of every page")
    create.add_argument("--show-reference", action="store_true",
                        help="show the raters each record's reference answer (target output)")
    create.add_argument("--gold", metavar="FILE",
                        help="gold items with known answers (JSON Lines: model_input, outputs, answers), mixed in "
                        "to measure each rater's accuracy")
    create.add_argument("--gold-rate", type=float,
                        help="the share of each rater's items that are gold (default 0.1; needs --gold)")
    create.add_argument("--output", "-o", required=True, help="the job's directory")
    create.add_argument("--base-url", default="http://127.0.0.1:8765",
                        help="where `fmeval human serve` will be reached, for the invite links")
    create.add_argument(*STORE_FLAGS, **STORE_OPTIONS)

    serve = actions.add_parser("serve", help="the raters' web app (binds to 127.0.0.1; another --host needs TLS)")
    serve.add_argument("job", help="the job's directory")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--tls-cert", help="a PEM certificate: serve HTTPS (and Secure cookies)")
    serve.add_argument("--tls-key", help="its PEM private key")
    serve.add_argument("--allow-insecure-remote", action="store_true",
                       help="serve plain HTTP beyond loopback (only behind a proxy that adds TLS)")
    serve.add_argument("--forwarded-allow-ips", metavar="IPS",
                       help="proxies trusted for X-Forwarded-Proto/-For/-Host (default $FORWARDED_ALLOW_IPS, "
                       "else 127.0.0.1)")

    status = actions.add_parser("status", help="each rater's progress")
    status.add_argument("job")

    results = actions.add_parser("results", help="the ratings as a run (rewritten each time)")
    results.add_argument("job")
    results.add_argument("--output", "-o", required=True, help="the run's output directory")
    results.add_argument("--n-bootstrap", type=int, default=1000)
    results.add_argument("--seed", type=int, default=0)
    results.add_argument(*STORE_FLAGS, **STORE_OPTIONS)

    export = actions.add_parser("export", help="the raw ratings as CSV or JSON Lines")
    export.add_argument("job")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", "-o", help="a file (default: standard output)")
    export.add_argument("--history", action="store_true", help="every revision of each rating, not only the current")

    imported = actions.add_parser("import", help="ratings made elsewhere (the export's layout, CSV or JSON Lines)")
    imported.add_argument("job")
    imported.add_argument("file")

    agreement = actions.add_parser(
        "agreement", help="a judge run's agreement with human ratings (Spearman; Cohen's kappa for likert; 95%% CIs)")
    agreement.add_argument("--judge-run", required=True, help="a model_graded run")
    agreement.add_argument("--human-run", required=True, help="the output of `fmeval human results`")
    agreement.add_argument("--judge-metric", required=True, help="e.g. correctness")
    agreement.add_argument("--human-metric", required=True, help="e.g. likert_MODEL (MODEL: a rated run's model)")
    agreement.add_argument(*STORE_FLAGS, **STORE_OPTIONS)
    return {"human": run}


def run(args: argparse.Namespace) -> int:
    return {"create": _create, "serve": _serve, "status": _status, "results": _results, "export": _export,
            "import": _import, "agreement": _agreement}[args.human_command](args)


def _create(args: argparse.Namespace) -> int:
    from fmeval.errors import UserError
    from fmeval.human.job import create_job
    from fmeval.runs.loaded import load_runs

    try:
        instructions = Path(args.instructions).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--instructions: {exc}") from None
    if args.gold_rate is not None and args.gold is None:
        raise UserError("--gold-rate needs --gold FILE (the gold items to mix in)")
    runs = load_runs(args.run, store=args.store_url, labels=args.label)
    tokens = create_job(args.output, runs=runs, kinds=args.rating, instructions=instructions, raters=args.raters,
                        per_item=args.per_item, seed=args.seed, title=args.title, show_reference=args.show_reference,
                        gold=args.gold, gold_rate=0.1 if args.gold_rate is None else args.gold_rate)
    invites = Path(args.output) / "invites.txt"
    # the only copy of the tokens: readable by the job's owner alone
    descriptor = os.open(invites, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.writelines(f"{rater} {args.base_url.rstrip('/')}/r/{token}\n" for rater, token in tokens.items())
    print(f"Rating job in {args.output}: {len(tokens)} raters; their invite links are in {invites} "
          f"(send each rater their own). Serve it with: fmeval human serve {args.output}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from fmeval.human.app import serve

    serve(args.job, host=args.host, port=args.port, certfile=args.tls_cert, keyfile=args.tls_key,
          allow_insecure_remote=args.allow_insecure_remote, forwarded_allow_ips=args.forwarded_allow_ips)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from fmeval.human.job import Job

    job = Job(args.job)
    try:
        for rater in job.raters():
            progress = job.progress(rater)
            print(f"{rater}: {progress['done']} of {progress['total']} done, {progress['skipped']} skipped")
    finally:
        job.close()
    return EXIT_OK


def _results(args: argparse.Namespace) -> int:
    from fmeval.human.results import write_results

    summary = write_results(args.job, args.output, n_bootstrap=args.n_bootstrap, seed=args.seed, store=args.store_url)
    for score in summary.dataset_scores:
        value = "n/a" if score.value is None else f"{score.value:.4f}"
        ci = f"  95% CI [{score.ci_lower:.3f}, {score.ci_upper:.3f}]" if score.ci_lower is not None else ""
        print(f"  {score.name:28} {value}{ci}")
    for rater, quality in summary.config["rater_quality"].items():
        gold = "" if quality["gold_accuracy"] is None else f", gold accuracy {quality['gold_accuracy']:.2f}"
        seconds = quality["median_seconds_per_item"]
        timing = "" if seconds is None else f", median {seconds:.1f} s per item"
        flag = f"  FLAGGED: {quality['flagged']}" if quality["flagged"] else ""
        print(f"  {rater}: {quality['items_rated']} item(s) rated{gold}{timing}{flag}")
    print(f"Results: {args.output}, run {summary.run_id} (models: {json.dumps(summary.model['runs'])})")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from fmeval.human.results import export_ratings

    text = export_ratings(args.job, args.format, history=args.history)
    if args.output:
        write_output(args.output, text, "ratings file")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from fmeval.human.results import import_ratings

    print(f"imported {import_ratings(args.job, args.file)} rating(s)")
    return EXIT_OK


def _agreement(args: argparse.Namespace) -> int:
    from fmeval.human.results import judge_agreement
    from fmeval.runs.loaded import load_run

    result = judge_agreement(load_run(args.judge_run, store=args.store_url), load_run(args.human_run, store=args.store_url),
                             judge_metric=args.judge_metric, human_metric=args.human_metric)
    print(json.dumps(result))
    return EXIT_OK
