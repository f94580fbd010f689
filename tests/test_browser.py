"""The web app in a real headless chromium: chat, card and message thumbs, constraint removal,
Insights, export download, and the feedback rows in the database. Plus: ``python app.py`` starts
offline, without the default model, in no-LM mode and says so on the page.

The app runs in a thread of this process (scripted fake LM, hash embedder, tmp database) so the
test can read the same store; waits are on elements, never on network idle (Gradio keeps a
heartbeat request open).
"""
from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, SMALL_CATALOG, HashEmbedder, write_jsonl

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000
REPLY = "For a toddler I'd pick [[Thomas Tank Engine]]: sturdy, simple and well loved."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, services): the app over the small catalog with a scripted LM, on a free local port."""
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    from chatrec.backends.fake import FakeBackend
    from chatrec.services import build_services
    from chatrec.settings import Settings
    from chatrec.ui import build_app, launch_options

    tmp = tmp_path_factory.mktemp("browser")
    settings = Settings.load({"catalog": write_jsonl(tmp / "catalog.jsonl", SMALL_CATALOG), "home": tmp / "home",
                              "model": "fake", "port": free_port()}, env={})
    services = build_services(settings, backend=FakeBackend([REPLY]), embedder=HashEmbedder())
    demo = build_app(settings, services).queue(default_concurrency_limit=2)
    demo.launch(**launch_options(settings), prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{settings.port}/", services
    demo.close()
    services.store.close()


@pytest.fixture(scope="module")
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(WAIT_MS)
        yield page
        browser.close()


@pytest.mark.browser
def test_chat_feedback_constraints_insights_and_export(served, page, tmp_path):
    from playwright.sync_api import expect

    url, services = served
    page.goto(url)
    page.locator("#msg textarea").fill("a train for my toddler under £20, no lego")
    page.locator("#send").click()

    answer = page.locator("#chat [data-testid='bot']").last
    expect(answer).to_contain_text("For a toddler I'd pick Thomas Tank Engine: sturdy")
    card = page.locator("#item-card-1")
    expect(card).to_contain_text("Thomas Tank Engine")
    expect(card).to_contain_text("£9.99")
    expect(card).to_contain_text("Picked by the assistant")
    expect(page.locator("#understood")).to_contain_text("Budget: under £20")
    expect(page.locator("#understood")).to_contain_text("Avoid: lego")

    page.locator("#chat button[aria-label='Like']").last.click()
    expect(page.locator("#status")).to_contain_text("Thanks for the 👍 on that answer.")
    page.locator("#item-down-2").click()
    expect(page.locator("#status")).to_contain_text("👎 Saved: I won't suggest")
    page.locator("#item-up-1").click()
    expect(page.locator("#status")).to_contain_text("👍 Saved: more like “Thomas Tank Engine”")
    expect(card).to_contain_text("You liked this")

    page.locator("#understood label", has_text="Budget: under £20").click()
    expect(page.locator("#status")).to_contain_text("Removed budget. Recommendations updated.")
    expect(page.locator("#understood")).not_to_contain_text("Budget")

    page.get_by_role("tab", name="Insights").click()
    expect(page.locator("#top-liked")).to_contain_text("Thomas Tank Engine")
    expect(page.locator("#most-rejected")).not_to_contain_text("No item votes yet")
    expect(page.locator("#insights-kpis")).to_contain_text("Votes")
    expect(page.locator("#insights-kpis .kpi").filter(has_text="Votes")).to_contain_text("3")
    expect(page.locator("#insights-timeline img")).to_be_visible()

    with page.expect_download() as download:
        page.locator("#export-csv").click()
    saved = tmp_path / "export.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as zf:
        rows = list(csv.DictReader(io.TextIOWrapper(zf.open("feedback.csv"), encoding="utf-8")))
    assert [(r["target"], r["item_title"], r["value"]) for r in rows][::2] == [
        ("message", "", "1"), ("item", "Thomas Tank Engine", "1")]

    feedback = services.store.feedback_rows()
    assert [(f.target, f.value) for f in feedback] == [("message", 1), ("item", -1), ("item", 1)]
    assert feedback[2].item_id == "t3" and feedback[0].turn_id == feedback[2].turn_id is not None

    page.locator("#conv-picker input").click()
    page.get_by_role("option").first.click()
    expect(page.locator("#conv-replay")).to_contain_text("🧑 a train for my toddler under £20, no lego")

    page.get_by_role("tab", name="Chat").click()
    page.locator("#undo").click()
    expect(page.locator("#msg textarea")).to_have_value("a train for my toddler under £20, no lego")
    expect(page.locator("#chat [data-testid='bot']")).to_have_count(0)
    expect(page.locator("#item-card-1")).to_be_hidden()
    evil = "<img src=x onerror=\"window.__xss=1\"> [click me](javascript:window.__xss=2) a train"
    page.locator("#msg textarea").fill(evil)
    page.locator("#send").click()  # answered by the fake's default reply
    expect(page.locator("#chat [data-testid='bot']").last).to_contain_text("Here are a few ideas")
    expect(page.locator("#chat [data-testid='user']").last).to_contain_text('<img src=x onerror="window.__xss=1">')
    assert page.locator("#chat img[src='x'], #chat a[href^='javascript']").count() == 0
    assert page.evaluate("window.__xss") is None
    expect(page.locator("#item-card-1")).to_be_visible()
    page.locator("#new-chat").click()
    expect(page.locator("#status")).to_contain_text("Started a new conversation.")
    expect(page.locator("#chat [data-testid='bot']")).to_have_count(0)
    expect(page.locator("#understood label")).to_have_count(0)


@pytest.mark.slow
def test_plain_app_starts_offline_in_no_lm_mode_and_says_so(tmp_path):
    """The default model id is not cached and the hub is unreachable: start anyway, and tell the user."""
    port = free_port()
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "CHATREC_HOME": str(tmp_path / "home"),
           "CHATREC_CATALOG": str(write_jsonl(tmp_path / "catalog.jsonl", SMALL_CATALOG)),
           "CHATREC_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    env.pop("CHATREC_MODEL", None)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Running on local URL" in line:
                break
        output = "".join(lines)
        assert "Running on local URL" in output, output
        assert "note: Running without a language model:" in output
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10).read().decode()
        assert "Running without a language model:" in page and "Traceback" not in output
    finally:
        proc.terminate()
        proc.wait(timeout=30)
