"""Benchmarks that print their figures, each against the raw library doing the same work in the same run.

    python -m pipelines.bench inference [--json] [--rounds 3]
    python -m pipelines.bench support [--json] [--passages 10000] [--queries 200] [--no-cross-encoder]
    python -m pipelines.bench sentiment [--json] [--n 1000]
    python -m pipelines.bench recommender [--json] [--items 100000] [--users 10000] [--requests 2000] [--concurrency 4] [--servers 2] [--server daphne|uvicorn|daphne,uvicorn] [--rounds 2]
    python -m pipelines.bench chaos [--json] [--good 300] [--bad 150] [--kills 3] [--seed 7] [--consumers 2] [--fuzz-cases 200] [--no-broker-restart]
    python -m pipelines.bench training [--json] [--rows 2000] [--pairs 4000] [--epochs 2] [--base NAME_OR_PATH] [--devdata DIR]
    python -m pipelines.bench alerts [--json] [--semantics new|cooldown] [--days 14] [--surges 20] [--tickers 10] [--seed 5] [--step-minutes 2] [--for-evaluations N] [--clear-threshold X] [--headlines N] [--scores labels|model] [--no-kafka]

The last line printed is one JSON object (the contract other tools read).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from services.output import json_line

ROOT = Path(__file__).resolve().parent.parent


def django_setup(var_subdir: str) -> None:
    """Configure Django on a private var/ folder so a benchmark never touches the demo's data."""
    os.environ.setdefault("SUITE_VAR_DIR", str(ROOT / "var" / var_subdir))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="which", required=True)
    inference = sub.add_parser("inference", help="raw model vs in-process batcher vs Celery worker, batch 1/8/64")
    inference.add_argument("--json", action="store_true", help="print only the JSON line")
    inference.add_argument("--rounds", type=int, default=5, help="alternating rounds per path; the median is reported (3 rounds moved the ratio by ±5 %%)")
    inference.add_argument("--texts", type=int, default=512, help="texts per batch size and round")
    sentiment = sub.add_parser("sentiment", help="headlines through the real Kafka broker and consumer vs the raw model")
    sentiment.add_argument("--json", action="store_true", help="print only the JSON line")
    sentiment.add_argument("--n", type=int, default=1000, help="headlines to replay")
    sentiment.add_argument("--batch-size", type=int, default=64, help="consumer poll size and raw model batch size")
    support = sub.add_parser("support", help="answer latency on a 10k-passage KB vs raw embed + FAISS; FAISS at 100k/1M")
    support.add_argument("--json", action="store_true", help="print only the JSON line")
    support.add_argument("--passages", type=int, default=10_000)
    support.add_argument("--queries", type=int, default=200)
    support.add_argument("--no-cross-encoder", dest="cross_encoder", action="store_false",
                         help="skip the answers with the `rerank` cross-encoder (and its one-off quick training)")
    recommender = sub.add_parser("recommender", help="GET /api/recommendations over HTTP under load vs one raw FAISS search")
    recommender.add_argument("--json", action="store_true", help="print only the JSON line")
    recommender.add_argument("--items", type=int, default=100_000)
    recommender.add_argument("--users", type=int, default=10_000)
    recommender.add_argument("--requests", type=int, default=2000)
    recommender.add_argument("--concurrency", type=int, default=4, help="clients with keep-alive connections")
    recommender.add_argument("--servers", type=int, default=2, help="ASGI server processes sharing the listening socket")
    recommender.add_argument("--server", default="daphne",
                             help="ASGI server: daphne (production's, deploy/suite.sh) or uvicorn (if installed); a comma list (daphne,uvicorn) "
                                  "runs the same requests through each in alternating turns; the first gives the top-level figures")
    recommender.add_argument("--rounds", type=int, default=2, help="alternating turns per server when several are compared")
    chaos = sub.add_parser("chaos", help="hostile + good messages through the real broker; consumers SIGKILLed, broker restarted")
    chaos.add_argument("--json", action="store_true", help="print only the JSON line")
    chaos.add_argument("--good", type=int, default=300, help="well-formed headlines (each must be stored exactly once)")
    chaos.add_argument("--bad", type=int, default=150, help="hostile messages (each must reach the DLQ)")
    chaos.add_argument("--kills", type=int, default=3, help="consumers SIGKILLed (and restarted) mid-stream")
    chaos.add_argument("--seed", type=int, default=7)
    chaos.add_argument("--consumers", type=int, default=2, help="consumer processes in the group")
    chaos.add_argument("--fuzz-cases", type=int, default=200, help="HTTP fuzz cases (pipelines.fuzz); 0 skips")
    chaos.add_argument("--no-broker-restart", action="store_true", help="leave the broker running (it must be run by deploy/kafka.sh otherwise)")
    alerts = sub.add_parser("alerts", help="devdata headlines with injected negative surges: recall, false alerts, delay, notices")
    alerts.add_argument("--json", action="store_true", help="print only the JSON line")
    alerts.add_argument("--semantics", choices=["new", "cooldown"], default="new",
                        help="new: pending/firing/resolved with grouped notices; cooldown: the single-evaluation rule before it")
    alerts.add_argument("--days", type=int, default=14, help="event-time span of the replay (the first 7 are warm-up)")
    alerts.add_argument("--surges", type=int, default=20, help="negative surges injected after the warm-up")
    alerts.add_argument("--tickers", type=int, default=10, help="watchlist size (headlines spread Zipf-like over it)")
    alerts.add_argument("--seed", type=int, default=5)
    alerts.add_argument("--step-minutes", type=int, default=2, help="event time per batch: the rules' evaluation interval")
    alerts.add_argument("--for-evaluations", type=int, default=None,
                        help="override the rules' pending evaluations (default of a new rule: 3)")
    alerts.add_argument("--clear-threshold", type=float, default=None,
                        help="override the rules' clear threshold (default of a new rule: 0.75 x threshold, 1.5)")
    alerts.add_argument("--scores", choices=["labels", "model"], default="labels",
                        help="labels: the headlines' human labels as a perfect model; model: the registered "
                             "sentiment champion, as the production consumer (runs share var/bench-alerts-models)")
    alerts.add_argument("--headlines", type=int, default=None, help="a random N of the devdata headlines (a shorter run)")
    alerts.add_argument("--no-kafka", action="store_true",
                        help="the fast path: store each step directly, without the broker and the consumer")
    training = sub.add_parser("training", help="classifier and pairs training, the recipe before issue 14 vs today's: examples/s")
    training.add_argument("--json", action="store_true", help="print only the JSON line")
    training.add_argument("--rows", type=int, default=2000, help="finance headlines to train the classifier on")
    training.add_argument("--pairs", type=int, default=4000, help="recommender training pairs (Online Retail)")
    training.add_argument("--epochs", type=int, default=2, help="the epoch bound of every run")
    training.add_argument("--base", default=None, help="a packaged base name or a model folder (default: all-minilm-l6-v2)")
    training.add_argument("--devdata", type=Path, default=ROOT.parent / "shared" / "devdata")
    args = parser.parse_args(argv)
    if args.which == "training":
        for name in ("rows", "pairs", "epochs"):
            if getattr(args, name) < (1 if name == "epochs" else 20):
                parser.error(f"--{name} {getattr(args, name)}: too small (epochs >= 1, rows and pairs >= 20).")
    if args.which == "alerts" and args.headlines is not None and args.headlines < 1:
        parser.error(f"--headlines {args.headlines}: at least 1.")
    if args.which == "inference":
        django_setup("bench")
        from pipelines.bench_inference import inference_bench

        result = inference_bench(rounds=args.rounds, n_texts=args.texts, quiet=args.json)
    elif args.which == "support":
        django_setup("bench-support")
        from pipelines.bench_support import support_bench

        result = support_bench(n_passages=args.passages, n_queries=args.queries, quiet=args.json,
                               cross_encoder=args.cross_encoder)
    elif args.which == "sentiment":
        django_setup("bench")
        from pipelines.bench_sentiment import sentiment_bench

        result = sentiment_bench(n=args.n, batch_size=args.batch_size, quiet=args.json)
    elif args.which == "recommender":
        django_setup("bench-recommender")
        from pipelines.bench_recommender import recommender_bench

        result = recommender_bench(n_items=args.items, n_users=args.users, n_requests=args.requests,
                                   concurrency=args.concurrency, servers=args.servers, quiet=args.json,
                                   server_kinds=tuple(k.strip() for k in args.server.split(",") if k.strip()), rounds=args.rounds)
    elif args.which == "chaos":
        django_setup("bench-chaos")
        from pipelines.bench_chaos import chaos_bench

        result = chaos_bench(good=args.good, bad=args.bad, kills=args.kills, seed=args.seed, consumers=args.consumers,
                             fuzz_cases=args.fuzz_cases, restart_broker=not args.no_broker_restart, quiet=args.json)
    elif args.which == "training":
        django_setup("bench-training")  # the recommender's readers import its app; no table is used
        from pipelines.bench_training import training_bench

        result = training_bench(rows=args.rows, pairs=args.pairs, epochs=args.epochs, base=args.base,
                                devdata=args.devdata.expanduser(), quiet=args.json)
    elif args.which == "alerts":
        tuned = "".join(f"-{k}{v}" for k, v in (("for", args.for_evaluations), ("clear", args.clear_threshold)) if v is not None)
        # Model-scored runs share one database: its registry holds the champion, registered once.
        django_setup("bench-alerts-models" if args.scores == "model" else f"bench-alerts-{args.semantics}{tuned}")
        from pipelines.bench_alerts import alerts_bench
        from services.errors import NotFound, ServiceUnavailable

        try:
            result = alerts_bench(semantics=args.semantics, days=args.days, surges=args.surges, tickers=args.tickers,
                                  seed=args.seed, step_minutes=args.step_minutes, for_evaluations=args.for_evaluations,
                                  clear_threshold=args.clear_threshold, headlines=args.headlines,
                                  kafka=not args.no_kafka, scores=args.scores, quiet=args.json)
        except (ServiceUnavailable, NotFound) as exc:  # no broker or no champion: say where it looked and what to do
            print(exc.message, file=sys.stderr)
            print(json_line({"error": exc.message}))
            return 2
    print(json_line(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
