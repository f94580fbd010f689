"""chatrec web app: parse flags, build the shared services, launch the Gradio UI.

    python app.py [--model ID|PATH|none] [--catalog PATH] [--db URL] [--host HOST] [--port PORT]
                  [--auth USER:PASSWORD] [--concurrency N] [other pipeline flags, see --help]

Every flag falls back to a ``CHATREC_*`` environment variable, then to the offline defaults.
Only builds and launches: the UI is ``chatrec.ui.build_app``; nothing heavy runs on import.
No public share link is ever created; to reach the app from other machines bind ``--host
0.0.0.0`` behind your own proxy, and pass ``--auth`` (it protects the whole app: chat, Insights
and exports alike).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from chatrec.cli import add_common

    parser = argparse.ArgumentParser(prog="python app.py", description="chatrec web app (Gradio)")
    add_common(parser)
    web = parser.add_argument_group("web")
    web.add_argument("--host", help="interface to bind (default 127.0.0.1) [CHATREC_HOST]")
    web.add_argument("--port", type=int, help="port (default 7860) [CHATREC_PORT]")
    web.add_argument("--auth", help="USER:PASSWORD required to open the app [CHATREC_AUTH]")
    web.add_argument("--concurrency", type=int, help="turns answered at the same time (default 4)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home, works offline
    from chatrec.cli import settings_from_args
    from chatrec.errors import ChatrecError
    from chatrec.services import build_services
    from chatrec.ui import build_app, launch_options, parse_auth

    try:
        settings = settings_from_args(args)
        parse_auth(settings.auth)
        services = build_services(settings, progress=lambda msg: print(msg, flush=True))
    except ChatrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for notice in services.notices:
        print(f"note: {notice}", flush=True)
    if services.backend is None and not services.notices:
        print("note: Running without a language model (--model none): replies are templated from the "
              "ranked catalog items.", flush=True)
    if settings.host not in LOCAL_HOSTS and not settings.auth:
        print(f"warning: serving on {settings.host} without --auth: anyone who can reach this port can chat, "
              "read the Insights tab and download every logged conversation.", file=sys.stderr, flush=True)
    demo = build_app(settings, services)
    demo.queue(default_concurrency_limit=settings.concurrency)
    try:
        demo.launch(**launch_options(settings))
    except OSError as exc:
        print(f"error: cannot serve on {settings.host}:{settings.port} ({exc}); pass --port N or set CHATREC_PORT",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
