"""chatrec web app: parse flags, build the shared services, launch the Gradio UI.

    python app.py [--model ID|PATH|none] [--catalog PATH] [--db URL] [--host HOST] [--port PORT]
                  [--auth USER:PASSWORD] [--concurrency N] [other pipeline flags, see --help]

Every flag falls back to a ``CHATREC_*`` environment variable, then to the offline defaults.
Only builds and launches: the UI is ``chatrec.ui.build_app``; nothing heavy runs on import. While
the services load (first start: catalog embedding; a real model: minutes), ``ui_startup`` serves
a page on the same port that shows the steps, then hands the port to Gradio.
No public share link is ever created; to reach the app from other machines bind ``--host
0.0.0.0`` behind your own proxy, and pass ``--auth`` (it protects the whole app: chat, Insights
and exports alike).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
from typing import Sequence

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def exposure_warning(host: str, auth: str | None) -> str | None:
    """The start-up warning for an app that other machines can reach without a password."""
    try:
        loopback = host in LOCAL_HOSTS or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        loopback = False
    if loopback or auth:
        return None
    return (f"warning: serving on {host} without --auth: anyone who can reach this port can chat, "
            "read the Insights tab and download every logged conversation.")


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
    # `kill`, `docker stop` and systemd stop like Ctrl-C: Gradio closes its server and the exit
    # handlers run (the database engine is disposed, the export folder removed).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home, works offline
    from chatrec.cli import settings_from_args
    from chatrec.errors import ChatrecError
    from chatrec.services import build_services, settle_heap
    from chatrec.ui import build_app, launch_options, parse_auth
    from chatrec.ui_startup import StartupPage

    try:
        settings = settings_from_args(args)
        parse_auth(settings.auth)
    except ChatrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    warning = exposure_warning(settings.host, settings.auth)
    if warning:  # before anything listens, the start-up page included
        print(warning, file=sys.stderr, flush=True)
    startup = StartupPage(settings.host, settings.port)  # progress in the browser while loading
    if not startup.start():  # say so now, not after minutes of loading the model and catalog
        print(f"error: cannot serve on {settings.host}:{settings.port} (address in use or not available); "
              "pass --port N or set CHATREC_PORT", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        print(message, flush=True)
        startup.update(message)

    try:
        services = build_services(settings, progress=progress)
        progress("Building the web page...")
        demo = build_app(settings, services)
    except ChatrecError as exc:
        startup.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for notice in services.notices:
        print(f"note: {notice}", flush=True)
    if services.backend is None and not services.notices:
        print("note: Running without a language model (--model none): replies are templated from the "
              "ranked catalog items.", flush=True)
    demo.queue(default_concurrency_limit=settings.concurrency)
    options = launch_options(settings)
    settle_heap()  # start-up objects out of the collector's sight: no 0.5 s pauses inside turns
    startup.stop()  # the port is free again for Gradio; the page's poll reloads into the app
    try:
        demo.launch(**options)
    except OSError as exc:
        print(f"error: cannot serve on {settings.host}:{settings.port} ({exc}); pass --port N or set CHATREC_PORT",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # stopped while loading: no traceback for a stop the user asked for
        print("stopped", file=sys.stderr)
        sys.exit(130)
