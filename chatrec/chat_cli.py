"""``python -m chatrec chat``: one conversation in the terminal, one user turn per MESSAGE.

Runs exactly the pipeline the web UI runs (same ``Recommender``, same database). With
``--json`` it prints one JSON object per turn, as specified in ``../shared/EVAL.md``.
"""
from __future__ import annotations

import argparse
import json
import sys

from .cli import add_common, settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object per turn")
    parser.add_argument("messages", nargs="+", metavar="MESSAGE", help="user turns, in order")


def run(args: argparse.Namespace) -> int:
    from .recommender import Recommender, TurnResult
    from .services import build_services

    settings = settings_from_args(args)
    services = build_services(settings, progress=None if args.json else _stderr)
    for notice in services.notices:
        print(f"note: {notice}", file=sys.stderr)
    recommender = Recommender(services)
    state = recommender.new_state()
    failed = 0
    for message in args.messages:
        if not args.json:
            print(f"\nyou> {message}\nbot> ", end="", flush=True)
        shown = 0
        for event in recommender.respond(state, message):
            if isinstance(event, TurnResult):
                failed += event.status != "ok"
                _print_result(event, args.json)
            elif not args.json:
                print(event[shown:], end="", flush=True)
                shown = len(event)
    return 1 if failed else 0


def _print_result(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
        return
    print()
    for i, rec in enumerate(result.recommendations, 1):
        price = f"£{rec.item.price:.2f}" if rec.item.price is not None else "price n/a"
        print(f"  {i}. {rec.item.title} ({price}) [{rec.source}] - {rec.reason}")
    for mention in result.ungrounded:
        print(f"  ! not in catalog, not recommended: {mention}")
    if result.error:
        print(f"  ! {result.error}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
