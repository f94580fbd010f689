"""The web app in a real headless chromium, clicked as a person would, in three browser sessions:

1. The demo catalog without a language model (``--model none``) behind ``--auth``: log in, the
   no-LM banner, an example prompt, item cards checked field by field against the catalog, the
   "What I understood" panel, thumbs on an answer and on items (confirmations, badges, DB rows),
   removing a constraint re-ranks, retry, undo, a friendly error, new conversation; Insights shows
   the clicks (and a refresh shows the next ones), CSV and Parquet downloads read back, the
   conversation viewer replays the conversation, and exports need the login.
2. The tiny real transformers model the tests build, on the demo catalog: the reply streams (several partial texts are
   seen), cards, thumbs rows, retry, undo, escaping of hostile input.
3. ``python app.py`` as a user starts it: the start-up page shows progress and opens the app by
   itself; offline without the default model it runs in no-LM mode and says so on the page.

Sessions 1 and 2 run the app in a thread of this process (hash embedder, tmp database) so the test
can read the same store; waits are on elements, never on network idle (Gradio keeps a heartbeat
request open).
"""
from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, SMALL_CATALOG, HashEmbedder, write_jsonl

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000
DEMO_CATALOG = ROOT / "catalog" / "toys.jsonl"
BOT = "#chat [data-testid='bot']"
USER = "#chat [data-testid='user']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def serve(tmp: Path, backend, **overrides):
    """(url, services) for the app launched in this process on a free port."""
    from chatrec.services import build_services
    from chatrec.settings import Settings
    from chatrec.ui import build_app, launch_options

    settings = Settings.load({"home": tmp / "home", "port": free_port(), "temperature": 0.0, **overrides}, env={})
    services = build_services(settings, backend=backend, embedder=HashEmbedder())
    demo = build_app(settings, services).queue(default_concurrency_limit=2)
    demo.launch(**launch_options(settings), prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{settings.port}/", services
    finally:
        demo.close()
        services.store.close()


def new_page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(WAIT_MS)
    return page


def card_ids(page) -> list[str]:
    return [c.get_attribute("data-item-id") for c in page.locator(".rec-slot:visible .rec-card").all()]


def expect_card_shows_catalog_item(card, item) -> None:
    """Every field a shopper needs, exactly as the catalog has it."""
    from playwright.sync_api import expect

    from chatrec.ui_view import price_text

    expect(card.locator(".rec-title")).to_have_text(item.title)
    expect(card.locator(".rec-price")).to_have_text(price_text(item.price))
    if item.brand:
        expect(card.locator(".rec-brand")).to_have_text(item.brand)
    if item.category:
        expect(card.locator(".rec-cat")).to_have_text(item.category)
    if item.rating is not None:
        expect(card.locator(".rec-rating")).to_contain_text(f"{item.rating:.1f}")
    if item.review_count:
        plural = "s" if item.review_count != 1 else ""
        expect(card.locator(".rec-rating")).to_contain_text(f"({item.review_count:,} review{plural})")
    expect(card.locator(".rec-reason")).not_to_be_empty()


def log_in(page, url: str) -> None:
    page.goto(url)
    page.get_by_label("username").fill("ann")
    page.get_by_label("password").fill("s3cret")
    page.get_by_role("button", name="Login").click()
    page.locator("#msg textarea").wait_for()


def read_zip(path: Path, name: str) -> pd.DataFrame:
    with zipfile.ZipFile(path) as zf:
        data = zf.read(name)
    return pd.read_csv(io.BytesIO(data)) if name.endswith(".csv") else pd.read_parquet(io.BytesIO(data))


def download(page, button: str, dest: Path):
    with page.expect_download() as info:
        page.locator(button).click()
    info.value.save_as(dest)
    return info.value.url


@pytest.mark.browser
def test_demo_catalog_without_lm_behind_login(browser, tmp_path):
    from playwright.sync_api import expect

    with serve(tmp_path, None, catalog=DEMO_CATALOG, model="none", auth="ann:s3cret") as (url, services):
        page = new_page(browser)
        log_in(page, url)
        expect(page.locator("#notice-banner")).to_contain_text("Running without a language model")
        expect(page.locator(".app-pill")).to_have_text("863 items · no language model")
        expect(page.locator("#understood-hint")).to_contain_text("Nothing yet.")
        expect(page.locator("#cards-hint")).to_be_visible()

        page.locator("#chat .example", has_text="A wooden train set for my 3-year-old, under £40").click()
        expect(page.locator(USER).last).to_have_text("A wooden train set for my 3-year-old, under £40")
        expect(page.locator(BOT).last).to_contain_text("Here are some picks in Toy Trains & Accessories (under £40, for a 3-year-old)")
        expect(page.locator("#status")).to_contain_text("Turn 1 · ")
        expect(page.locator(".rec-slot:visible")).to_have_count(5)
        first = card_ids(page)
        for n, item_id in enumerate(first, 1):
            item = services.catalog.by_id[item_id]
            expect_card_shows_catalog_item(page.locator(f"#item-card-{n}"), item)
            if item.price is not None:  # the "why" quotes the price and the budget the user gave
                assert item.price <= 40
                expect(page.locator(f"#item-card-{n} .rec-reason")).to_contain_text(
                    f"£{item.price:.2f} fits your budget (under £40)")
        understood = page.locator("#understood label")
        expect(understood).to_have_text(["Category: Toy Trains & Accessories", "Budget: under £40", "For: a 3-year-old"])
        expect(page.locator("#understood-hint")).to_be_hidden()
        expect(page.locator("#cards-hint")).to_be_hidden()

        # Thumbs on the answer count for each of its items, and the confirmation says so.
        page.locator("#chat button[aria-label='Like']").last.click()
        expect(page.locator("#status")).to_have_text(
            "Thanks for the 👍 on that answer — counted for each of its 5 items.")
        expect(page.get_by_text("counted for each of its 5 items").first).to_be_visible()  # the toast
        expect(understood).to_have_count(8)  # the five liked items join the panel
        page.locator("#item-down-2").click()
        rejected = services.catalog.by_id[first[1]].title
        expect(page.locator("#status")).to_have_text(f"👎 Saved: I won't suggest “{rejected}” again.")
        expect(page.locator("#item-card-2")).to_contain_text("Hidden from now on")
        expect(page.locator("#item-card-1")).to_contain_text("You liked this")
        votes = services.store.feedback_rows()
        assert [(v.target, v.value, v.item_id) for v in votes] == [("message", 1, None), ("item", -1, first[1])]

        # One click removes a wrong constraint and the picks change at once and on the next turn.
        understood.filter(has_text="Budget: under £40").click()
        expect(page.locator("#status")).to_have_text("Removed budget. Recommendations updated.")
        expect(understood.filter(has_text="Budget")).to_have_count(0)
        expect(page.locator("#item-card-1 .rec-source")).to_have_text("Updated after your change")
        reranked = card_ids(page)
        assert reranked != first and first[1] not in reranked
        page.locator("#msg textarea").fill("something for outdoors")
        page.locator("#send").click()
        expect(page.locator("#status")).to_contain_text("Turn 2 · ")
        expect(page.locator(BOT)).to_have_count(2)
        expect(page.locator(BOT).last).not_to_contain_text("under £40")
        second_turn = card_ids(page)
        assert first[1] not in second_turn

        # Retry answers the same message again; undo takes it back and returns the text.
        page.locator("#retry").click()
        expect(page.locator("#status")).to_contain_text("Turn 2 answered again · ")  # done: undo is accepted
        expect(page.locator(BOT)).to_have_count(2)
        page.locator("#undo").click()
        expect(page.locator("#msg textarea")).to_have_value("something for outdoors")
        expect(page.locator(BOT)).to_have_count(1)
        expect(page.locator("#status")).to_have_text("Removed your last message and my answer (the log keeps them).")
        page.locator("#msg textarea").fill("x" * 4001)
        page.locator("#send").click()
        expect(page.get_by_text("Your message is 4,001 characters long; the limit is 4,000.")).to_be_visible()
        expect(page.locator(BOT)).to_have_count(1)

        # Insights shows the clicks just made; a refresh picks up the next ones.
        page.get_by_role("tab", name="Insights").click()
        kpi = page.locator("#insights-kpis .kpi")
        expect(kpi.filter(has_text="Conversations")).to_contain_text("1")
        expect(kpi.filter(has_text="Turns")).to_contain_text("3")  # undo keeps the log: turn 2 was retried
        expect(kpi.filter(has_text="Votes")).to_contain_text("2")
        expect(kpi.filter(has_text="👍 rate, answers")).to_contain_text("100%")
        expect(kpi.filter(has_text="👍 rate, items")).to_contain_text("0%")
        expect(page.locator("#most-rejected")).to_contain_text(rejected[:30])
        expect(page.locator("#top-liked")).to_contain_text("No item votes yet")
        expect(page.locator("#insights-timeline img")).to_be_visible()
        expect(page.locator("#insights-requests img")).to_be_visible()
        page.get_by_role("tab", name="Chat").click()
        page.locator("#item-up-1").click()
        liked = services.catalog.by_id[card_ids(page)[0]].title
        expect(page.locator("#status")).to_have_text(f"👍 Saved: more like “{liked}” from now on.")
        page.get_by_role("tab", name="Insights").click()
        page.locator("#insights-refresh").click()
        expect(kpi.filter(has_text="Votes")).to_contain_text("3")
        expect(kpi.filter(has_text="👍 rate, items")).to_contain_text("50%")
        expect(page.locator("#top-liked")).to_contain_text(liked[:30])

        # Both downloads read back to the rows in the database.
        csv_url = download(page, "#export-csv", tmp_path / "csv.zip")
        download(page, "#export-parquet", tmp_path / "parquet.zip")
        for frame in (read_zip(tmp_path / "csv.zip", "feedback.csv"), read_zip(tmp_path / "parquet.zip", "feedback.parquet")):
            assert list(frame["target"]) == ["message", "item", "item"] and list(frame["value"]) == [1, -1, 1]
            assert list(frame["item_title"].fillna("")) == ["", rejected, liked]
        for name in ("conversations", "turns", "recommendations"):
            assert len(read_zip(tmp_path / "csv.zip", f"{name}.csv")) == len(read_zip(tmp_path / "parquet.zip", f"{name}.parquet"))
        assert len(read_zip(tmp_path / "csv.zip", "turns.csv")) == 3

        # The viewer replays the conversation with its picks and votes.
        page.locator("#conv-picker input").click()
        page.get_by_role("option").first.click()
        replay = page.locator("#conv-replay .replay-turn")
        expect(replay).to_have_count(3)
        expect(replay.first).to_contain_text("🧑 A wooden train set for my 3-year-old, under £40")
        expect(replay.first.locator(".replay-meta").first).to_contain_text("👍")
        expect(replay.first.locator("li").nth(1)).to_contain_text(f"{rejected} [ranker] 👎")

        # New conversation clears the chat, the panel and the cards; the example prompts come back.
        page.get_by_role("tab", name="Chat").click()
        page.locator("#new-chat").click()
        expect(page.locator("#status")).to_have_text("Started a new conversation.")
        expect(page.locator(BOT)).to_have_count(0)
        expect(understood).to_have_count(0)
        expect(page.locator(".rec-slot:visible")).to_have_count(0)
        expect(page.locator("#understood-hint")).to_be_visible()
        expect(page.locator("#cards-hint")).to_be_visible()
        expect(page.locator("#chat .example")).to_have_count(4)

        # Without the login nothing is served: not the app, not its config, not an export file.
        stranger = browser.new_context()
        for address in (url + "config", csv_url):
            assert stranger.request.get(address).status in (401, 403), address
        stranger.close()
        page.close()


@pytest.mark.browser
def test_tiny_model_streams_and_takes_feedback(browser, tmp_path, tiny_model_dir):
    from playwright.sync_api import expect

    with serve(tmp_path, "load", catalog=DEMO_CATALOG, model=str(tiny_model_dir), max_new_tokens=32) as (url, services):
        assert services.backend is not None and services.notices == []
        page = new_page(browser)
        page.goto(url)
        expect(page.locator(".app-pill")).to_have_text(f"863 items · model: {tiny_model_dir}")
        expect(page.locator("#notice-banner")).to_be_hidden()
        # Record every text the answer bubble shows, to see the reply arrive piece by piece.
        page.locator("#chat").wait_for(state="attached")  # the observer needs the element to exist
        page.evaluate("""() => { window.__seen = [];
            new MutationObserver(() => { const b = document.querySelectorAll("#chat [data-testid='bot']");
              const t = b.length ? b[b.length - 1].innerText : null;
              if (t && window.__seen[window.__seen.length - 1] !== t) window.__seen.push(t); })
            .observe(document.querySelector('#chat'), {subtree: true, childList: true, characterData: true}); }""")
        page.locator("#msg textarea").fill("a train for my toddler under £20")
        page.locator("#send").click()
        expect(page.locator("#status")).to_contain_text("Turn 1 · ", timeout=120_000)
        final = page.locator(BOT).last.inner_text()
        seen = [t for t in page.evaluate("window.__seen") if t.strip() not in ("", "…")]
        assert len(seen) >= 3, seen  # partial replies were shown before the final one
        assert final.strip()
        ids = card_ids(page)
        assert 1 <= len(ids) <= 5
        for n, item_id in enumerate(ids, 1):
            expect_card_shows_catalog_item(page.locator(f"#item-card-{n}"), services.catalog.by_id[item_id])
        turn = services.store.turns(services.store.conversation_list()[0]["id"])[0]
        assert turn.model == str(tiny_model_dir) and turn.reply.strip()
        assert [r.item_id for r in turn.recommendations] == ids

        page.locator("#chat button[aria-label='Dislike']").last.click()
        expect(page.locator("#status")).to_contain_text("Thanks — noted the 👎 on that answer; counted against each")
        page.locator("#item-up-1").click()
        expect(page.locator("#status")).to_contain_text("👍 Saved: more like")
        expect(page.locator("#item-card-1")).to_contain_text("You liked this")
        votes = services.store.feedback_rows()
        assert [(v.target, v.value, v.item_id) for v in votes] == [("message", -1, None), ("item", 1, ids[0])]
        assert votes[0].turn_id == votes[1].turn_id == turn.id

        page.locator("#retry").click()
        expect(page.locator("#status")).to_contain_text("Turn 1 answered again · ", timeout=120_000)
        expect(page.locator(BOT)).to_have_count(1)
        page.locator("#undo").click()
        expect(page.locator(BOT)).to_have_count(0)
        evil = "<img src=x onerror=\"window.__xss=1\"> [click me](javascript:window.__xss=2) a train"
        page.locator("#msg textarea").fill(evil)
        page.locator("#send").click()
        expect(page.locator("#status")).to_contain_text("Turn 1 · ", timeout=120_000)
        expect(page.locator(USER).last).to_contain_text('<img src=x onerror="window.__xss=1">')
        assert page.locator("#chat img[src='x'], #chat a[href^='javascript']").count() == 0
        assert page.evaluate("window.__xss") is None
        assert len(services.store.conversation_list()) == 1 and len(services.store.feedback_rows()) == 2

        # Insights: the share of the model's item names that matched no catalog item, and its latency.
        mentions = services.store.table_rows("mentions")
        caught = sum(1 for m in mentions if m["item_id"] is None)
        page.get_by_role("tab", name="Insights").click()
        kpi = page.locator("#insights-kpis .kpi")
        expect(kpi.filter(has_text="Turns")).to_contain_text("3")
        expect(kpi.filter(has_text="Invented names caught")).to_contain_text(
            f"{caught} of {len(mentions)} ({caught / len(mentions):.0%})" if mentions else "–")
        expect(kpi.filter(has_text="Latency p50 / p95")).to_contain_text(" / ")
        expect(kpi.filter(has_text="Latency p50 / p95")).not_to_contain_text("–")
        page.close()


@pytest.mark.slow
@pytest.mark.browser
def test_app_py_shows_start_up_progress_then_runs_offline_without_lm(browser, tmp_path):
    """The default model is not cached and the hub is unreachable: start anyway, and tell the user."""
    from playwright.sync_api import expect

    port = free_port()
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "CHATREC_HOME": str(tmp_path / "home"),
           "CHATREC_CATALOG": str(write_jsonl(tmp_path / "catalog.jsonl", SMALL_CATALOG)),
           "CHATREC_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    env.pop("CHATREC_MODEL", None)
    log = (tmp_path / "app.log").open("w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        page = new_page(browser)
        deadline = time.monotonic() + 60
        while True:  # the start-up page is up before the heavy imports
            try:
                response = page.goto(f"http://127.0.0.1:{port}/")
                break
            except Exception:
                assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "app.log").read_text()
                time.sleep(0.2)
        assert response.status == 503
        expect(page.locator("h1")).to_have_text("🧸 chatrec is starting…")
        expect(page.locator("#steps")).to_contain_text("Loading embedding model", timeout=60_000)
        # The page reloads into the app by itself once it is ready.
        expect(page.locator("#notice-banner")).to_contain_text("Running without a language model:", timeout=120_000)
        expect(page.locator("#msg textarea")).to_be_visible()
        output = (tmp_path / "app.log").read_text()
        assert "note: Running without a language model:" in output and "Traceback" not in output
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
