"""Load test: many simulated shoppers chat with the running web app over HTTP at once; nothing leaks or is lost.

    python scripts/load_test.py [--model fake|none] [--users 50] [--turns 10] [--deadline 900] [--out FILE.json]
    python scripts/load_test.py --url http://127.0.0.1:7860/ --db sqlite:///.chatrec/chatrec.db --catalog FILE

Without ``--url`` it starts ``python app.py`` on a free loopback port with a fresh database (the
embedding cache in ``--home`` is reused between runs) and stops it afterwards. Each shopper is its
own ``gradio_client.Client`` (its own Gradio session, so its own ``gr.State``) and calls the same
events the page's buttons call, found by their elements' ids: Send, then 👍/👎 on a card every
third turn. Each shopper asks for its own budget and signs every message with a code no one else
uses, and checks every answer: the chat holds only its own messages, "What I understood" shows
its own budget, every card is a catalog item within that budget. Afterwards the database must
hold, in that shopper's one conversation, every turn it sent and exactly the feedback it got a
confirmation for, each row once. Prints errors, requests, p50/p95 latency; exits 1 on any error.

Loopback only (it refuses any other host) and bounded: ``--deadline`` seconds in all, each
request waits at most what is left. Leaves out the browser (``tests/test_browser.py``) and
message thumbs: the Chatbot's like event needs the browser's event data.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ASKS = ["a birthday present for my niece under £{cap}", "something different please", "maybe a puzzle or a game?",
        "what about something creative", "anything for outdoors?", "a soft toy would be nice",
        "something educational", "show me a few more", "what else have you got", "one last idea"]
CARD_ID = re.compile(r'data-item-id="([^"]*)"')


@dataclass
class Shopper:
    index: int
    code: str
    cap: int  # "under £cap": the budget only this shopper asks for
    sent: int = 0
    clicks: list[tuple[str, int]] = field(default_factory=list)  # (item id, +1/-1) confirmed on screen
    errors: list[str] = field(default_factory=list)


@dataclass
class Report:
    users: int
    turns: int
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {"turn": [], "feedback": []})
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        every = self.latency_ms["turn"] + self.latency_ms["feedback"]
        return {"users": self.users, "turns_per_user": self.turns, "requests": self.requests,
                "errors": len(self.errors), "wall_s": round(self.wall_s, 1),
                "requests_per_s": round(self.requests / self.wall_s, 2) if self.wall_s else None,
                **{f"{kind}_ms": _percentiles(values) for kind, values in {**self.latency_ms, "all": every}.items()}}


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
    return {"n": len(ordered), "p50": round(pick(0.50), 1), "p95": round(pick(0.95), 1), "max": round(ordered[-1], 1)}


# -- the app's HTTP API --------------------------------------------------------------------
class AppApi:
    """The UI's events by the element that triggers them, and its outputs by element id."""

    def __init__(self, client):
        self.client = client
        comps = {c["id"]: c for c in client.config["components"]}
        self.events: dict[tuple[str, str], tuple[str, list[str]]] = {}
        for dep in client.config["dependencies"]:
            shown = [comps[o].get("props", {}).get("elem_id") or comps[o]["type"] for o in dep["outputs"]
                     if comps[o]["type"] not in {"state", "column", "row", "group", "tab", "tabs"}]
            for target, event in dep.get("targets", []):
                elem_id = comps.get(target, {}).get("props", {}).get("elem_id")
                if elem_id and dep.get("api_name"):
                    self.events[(elem_id, event)] = ("/" + dep["api_name"], shown)

    def call(self, elem_id: str, event: str, *args, timeout: float) -> dict[str, Any]:
        api_name, names = self.events[(elem_id, event)]
        values = self.client.submit(*args, api_name=api_name).result(timeout=max(timeout, 0.1))
        values = values if isinstance(values, (list, tuple)) else [values]
        if len(values) != len(names):
            raise RuntimeError(f"{api_name} returned {len(values)} values for outputs {names}")
        return dict(zip(names, values))


def _texts(chat: list[dict]) -> list[tuple[str, str]]:
    out = []
    for m in chat or []:
        content = m.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        out.append((m["role"], " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))))
    return out


def _cards(view: dict[str, Any]) -> list[str]:
    return [m.group(1) for name, value in sorted(view.items()) if name.startswith("item-card-")
            and isinstance(value, str) for m in [CARD_ID.search(value)] if m]


# -- one shopper ---------------------------------------------------------------------------
def check_view(shopper: Shopper, view: dict[str, Any], codes: set[str], prices: dict[str, float | None]) -> list[str]:
    """Everything on this shopper's screen must be its own: messages, budget, cards."""
    problems = []
    chat = _texts(view.get("chat") or [])
    users = [text for role, text in chat if role == "user"]
    if len(users) != shopper.sent or len(chat) != 2 * shopper.sent:
        problems.append(f"chat shows {len(users)} user / {len(chat)} messages after {shopper.sent} turns")
    foreign = {c for c in codes - {shopper.code} for _, text in chat if c in text}
    if foreign or not all(shopper.code in text for text in users):
        problems.append(f"chat holds messages of {sorted(foreign) or 'no one'}; own code missing or foreign")
    understood = view.get("understood") or {}
    labels = [c[0] for c in understood.get("choices", [])] if isinstance(understood, dict) else []
    budgets = [label for label in labels if label.startswith("Budget:")]
    if budgets != [f"Budget: under £{shopper.cap}"]:
        problems.append(f"'What I understood' shows {budgets}, expected under £{shopper.cap}")
    for item_id in _cards(view):
        if item_id not in prices:
            problems.append(f"card {item_id!r} is not a catalog item")
        elif prices[item_id] is not None and prices[item_id] > shopper.cap:  # unpriced items may stay (ranker)
            problems.append(f"card {item_id} costs {prices[item_id]}, over this shopper's £{shopper.cap}")
    return problems


def run_shopper(url: str, shopper: Shopper, turns: int, codes: set[str], prices: dict[str, float | None],
                titles: dict[str, str], report: Report, deadline: float, start: threading.Barrier) -> None:
    from gradio_client import Client

    api = None
    try:
        api = AppApi(Client(url, verbose=False))
    except Exception as exc:  # the report counts it: a shopper that cannot connect is an error
        shopper.errors.append(f"connect: {type(exc).__name__}: {exc}")
    try:
        start.wait()  # every shopper connected: now all of them send at once
    except threading.BrokenBarrierError:
        pass
    if api is None:
        return
    for turn in range(turns):
        if time.monotonic() > deadline:
            shopper.errors.append(f"turn {turn + 1}: deadline reached")
            return
        text = f"{ASKS[turn % len(ASKS)].format(cap=shopper.cap)} (ref {shopper.code})"
        view = _timed(report, "turn", shopper, f"turn {turn + 1}", lambda: api.call(
            "send", "click", text, timeout=deadline - time.monotonic()))
        if view is None:
            continue
        shopper.sent += 1
        shopper.errors += [f"turn {turn + 1}: {p}" for p in check_view(shopper, view, codes, prices)]
        if turn % 3 == 2:
            _click(api, shopper, view, turn, titles, report, deadline)


def _click(api: AppApi, shopper: Shopper, view: dict[str, Any], turn: int, titles: dict[str, str],
           report: Report, deadline: float) -> None:
    cards = _cards(view)
    if not cards:
        shopper.errors.append(f"turn {turn + 1}: no card to rate")
        return
    slot = (turn // 3) % len(cards)
    value = 1 if (turn // 3 + shopper.index) % 2 == 0 else -1
    button = f"item-{'up' if value > 0 else 'down'}-{slot + 1}"
    after = _timed(report, "feedback", shopper, f"turn {turn + 1} {button}",
                   lambda: api.call(button, "click", timeout=deadline - time.monotonic()))
    if after is None:
        return
    status = html.unescape(str(after.get("status", "")))
    expected = "👍 Saved: more like" if value > 0 else "👎 Saved: I won't suggest"
    if expected in status and titles[cards[slot]] in status:
        shopper.clicks.append((cards[slot], value))
    else:
        shopper.errors.append(f"turn {turn + 1}: {button} on {cards[slot]} answered {status!r}")


def _timed(report: Report, kind: str, shopper: Shopper, what: str, fn) -> Any:
    started = time.perf_counter()
    try:
        return fn()
    except Exception as exc:  # any failed request is an error of the run, with what was asked
        shopper.errors.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
        return None
    finally:
        with _LOCK:
            report.requests += 1
            report.latency_ms[kind].append((time.perf_counter() - started) * 1000)


_LOCK = threading.Lock()


def run_load(url: str, users: int, turns: int, catalog_path: Path, deadline_s: float) -> tuple[Report, list[Shopper]]:
    """Drive ``users`` concurrent shoppers for ``turns`` turns each against the app at ``url``."""
    check_loopback(url)
    from chatrec.catalog import load_catalog

    catalog = load_catalog(catalog_path)
    prices = {item.id: item.price for item in catalog}
    titles = {item.id: item.title for item in catalog}
    run = "".join(random.Random().choices(string.ascii_lowercase, k=4))
    shoppers = [Shopper(i, f"{run}{i:03d}", 12 + 2 * i) for i in range(users)]
    codes = {s.code for s in shoppers}
    report = Report(users, turns)
    deadline = time.monotonic() + deadline_s
    start = threading.Barrier(users, timeout=deadline_s)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=users) as pool:
        for s in shoppers:
            pool.submit(run_shopper, url, s, turns, codes, prices, titles, report, deadline, start)
    report.wall_s = time.perf_counter() - started
    report.errors += [f"shopper {s.code}: {e}" for s in shoppers for e in s.errors]
    return report, shoppers


# -- the database afterwards ---------------------------------------------------------------
def check_store(store, shoppers: list[Shopper]) -> list[str]:
    """Each shopper: one conversation with every turn it sent, and its confirmed clicks stored exactly once."""
    turns = store.table_rows("turns")
    feedback = store.table_rows("feedback")
    problems = []
    for s in shoppers:
        mine = [t for t in turns if f"(ref {s.code})" in (t["user_text"] or "")]
        convs = {t["conversation_id"] for t in mine}
        if len(convs) != 1 or len(mine) != s.sent:
            problems.append(f"shopper {s.code}: {len(mine)} turns stored in {len(convs)} conversation(s), sent {s.sent}")
            continue
        (conv,) = convs
        intruders = [t["id"] for t in turns if t["conversation_id"] == conv and t not in mine]
        rows = [(f["item_id"], f["value"]) for f in feedback if f["conversation_id"] == conv]
        if intruders:
            problems.append(f"shopper {s.code}: turns {intruders} of someone else in its conversation")
        if rows != s.clicks:
            problems.append(f"shopper {s.code}: feedback rows {rows} != confirmed clicks {s.clicks}")
    return problems


def server_latency(store, shoppers: list[Shopper]) -> dict[str, float | int]:
    """The pipeline's own time per turn (``turns.latency_ms``), without the queue and HTTP around it."""
    codes = tuple(f"(ref {s.code})" for s in shoppers)
    return _percentiles([t["latency_ms"] for t in store.table_rows("turns") if (t["user_text"] or "").endswith(codes)])


# -- running the app -----------------------------------------------------------------------
def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing {url}: the load test only targets loopback ({', '.join(sorted(LOOPBACK))})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model: str, catalog: Path, home: Path, db_url: str, concurrency: int, timeout: float = 600):
    """``python app.py`` on a free loopback port; returns (process, url) once Gradio answers."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(ROOT / "app.py"), "--model", model, "--catalog", str(catalog), "--home", str(home),
           "--db", db_url, "--host", "127.0.0.1", "--port", str(port), "--concurrency", str(concurrency)]
    log = open(home / f"app-{port}.log", "w")  # noqa: SIM115 - kept open for the app's lifetime
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if proc.poll() is not None:
            raise SystemExit(f"app exited with {proc.returncode}; see {log.name}")
        try:
            if urlopen(url + "config", timeout=5).status == 200:  # the start-up page answers 503
                return proc, url
        except OSError:
            pass
        time.sleep(1)
    proc.terminate()
    proc.wait()
    raise SystemExit(f"app did not answer within {timeout:.0f} s; see {log.name}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running app (loopback only); default: start one")
    p.add_argument("--db", help="its SQLAlchemy URL, to check the stored rows (with --url)")
    p.add_argument("--model", default="fake", help="for the app this starts: fake (scripted LM) or none")
    p.add_argument("--catalog", type=Path, default=ROOT / "catalog" / "toys.jsonl")
    p.add_argument("--home", type=Path, default=ROOT / ".chatrec" / "loadtest", help="embedding cache, logs")
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=4, help="the started app's --concurrency")
    p.add_argument("--deadline", type=float, default=900, help="seconds for the whole run")
    p.add_argument("--out", type=Path, help="write the summary as JSON here")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from chatrec.store import Store

    proc = None
    db_url = args.db
    if args.url is None:
        args.home.mkdir(parents=True, exist_ok=True)
        db_url = f"sqlite:///{tempfile.mkdtemp(prefix='db-', dir=args.home)}/chatrec.db"
        proc, args.url = start_app(args.model, args.catalog, args.home, db_url, args.concurrency)
    try:
        report, shoppers = run_load(args.url, args.users, args.turns, args.catalog, args.deadline)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    server_ms = None
    if db_url:
        store = Store(db_url)
        report.errors += check_store(store, shoppers)
        server_ms = server_latency(store, shoppers)
        store.close()
    else:
        print("note: pass --db URL to check the stored turns and feedback", file=sys.stderr)
    summary = {"model": args.model if proc is not None else "external", "url": args.url, **report.summary(),
               "server_turn_ms": server_ms, "feedback_clicks": sum(len(s.clicks) for s in shoppers),
               "db_checked": bool(db_url)}
    for error in report.errors[:50]:
        print(f"error: {error}")
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**summary, "first_errors": report.errors[:50]}, indent=2,
                                       ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
