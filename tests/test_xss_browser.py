"""XSS in a real headless chromium: hostile catalog fields and a hostile message are shown as text.

The catalog's title, brand, description and category carry ``<script>``, ``<img onerror>``,
``<svg onload>`` and markdown links to ``javascript:``; so does the user's message. The app runs
without an LM (templated replies quote the titles) and with a fake LM that echoes the message and
names the hostile items. Every payload sets ``window.__xss`` or opens a dialog, so "inert" means:
no dialog fired, ``window.__xss`` is undefined, no element the payloads would create exists, and
the payload text is visible as text in the chat, the cards, the status line and the Insights tab.
"""
from __future__ import annotations

import pytest

from tests.conftest import SMALL_CATALOG, HashEmbedder, write_jsonl
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, free_port

TITLE = "<script>window.__xss=1</script> Tiny Train"
LINK_TITLE = "[Free train](javascript:window.__xss=6) <img src=x onerror=alert(7)>"
LINK_SHOWN = "Free train <img src=x onerror=alert(7)>"  # markdown places keep a javascript: link's label only
EVIL_ROWS = [
    {"id": "x1", "title": TITLE, "price": 5.0,
     "description": '<img src=x onerror="window.__xss=2"> [win a prize](javascript:window.__xss=3) wooden train',
     "category": "Trains<img src=x onerror=window.__xss=4>",
     "attributes": {"brand": "<svg onload=window.__xss=5>", "rating": 4.9, "review_count": 10}},
    {"id": "x2", "title": LINK_TITLE, "price": 6.0, "description": "train", "category": "Trains",
     "attributes": {"brand": "Evil & Co", "rating": 4.8, "review_count": 3}},
]
MESSAGE = ('a train under £8 <img src=x onerror="window.__xss=8"> <script>window.__xss=9</script> '
           "[click me](javascript:window.__xss=10) ![p](javascript:alert(11))")
BAD_ELEMENTS = ("img[src='x'], svg[onload], [onerror], [onload], a[href^='javascript' i], a[href^=' javascript' i], "
                "iframe, object, embed")


class EchoEvil:
    """A fake LM that repeats the user's message and names both hostile items in spans."""

    name = "echo-evil"
    supports_constraints = False
    context_window = 8192

    def count_tokens(self, messages):
        return sum(len(m["content"].split()) + 4 for m in messages)

    def stream(self, messages, options):
        yield f"You wrote: {messages[-1]['content']}\n\n"
        yield f"Try [[{TITLE}]] or [[{LINK_TITLE}]] <script>window.__xss=12</script>"


@pytest.fixture(scope="module", params=["none", "echo-lm"])
def served(request, tmp_path_factory):
    pytest.importorskip("playwright")
    if not __import__("pathlib").Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    from chatrec.services import build_services
    from chatrec.settings import Settings
    from chatrec.ui import build_app, launch_options

    tmp = tmp_path_factory.mktemp(f"xss-{request.param}")
    settings = Settings.load({"catalog": write_jsonl(tmp / "catalog.jsonl", SMALL_CATALOG + EVIL_ROWS),
                              "home": tmp / "home", "model": "none", "port": free_port()}, env={})
    backend = None if request.param == "none" else EchoEvil()
    services = build_services(settings, backend=backend, embedder=HashEmbedder())
    demo = build_app(settings, services).queue(default_concurrency_limit=2)
    demo.launch(**launch_options(settings), prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{settings.port}/", request.param
    demo.close()
    services.store.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.mark.browser
def test_hostile_catalog_and_message_render_inert(served, browser):
    from playwright.sync_api import expect

    url, mode = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.locator("#msg textarea").fill(MESSAGE)
    page.locator("#send").click()

    answer = page.locator("#chat [data-testid='bot']").last
    expect(answer).to_contain_text("Tiny Train")
    expect(page.locator("#chat [data-testid='user']").last).to_contain_text('<img src=x onerror="window.__xss=8">')
    if mode == "echo-lm":  # the LM repeated the payload: still text
        expect(answer).to_contain_text("<script>window.__xss=9</script>")
    card = page.locator(".rec-card[data-item-id='x1']")
    expect(card).to_contain_text(TITLE)
    expect(card).to_contain_text("<svg onload=window.__xss=5>")
    expect(card).to_contain_text("Trains<img src=x onerror=window.__xss=4>")
    expect(page.locator(".rec-card[data-item-id='x2']")).to_contain_text(LINK_TITLE)

    for item_id, title in (("x2", LINK_SHOWN), ("x1", TITLE)):  # the confirmation quotes the title
        page.locator(f"#item-up-{_slot_of(page, item_id)}").click()
        expect(page.locator("#status")).to_contain_text(f"👍 Saved: more like “{title}”")

    page.get_by_role("tab", name="Insights").click()
    expect(page.locator("#top-liked")).to_contain_text(TITLE)
    expect(page.locator("#top-liked")).to_contain_text(LINK_TITLE)
    page.locator("#conv-picker input").click()
    page.get_by_role("option").first.click()
    expect(page.locator("#conv-replay")).to_contain_text('<img src=x onerror="window.__xss=8">')
    expect(page.locator("#conv-replay")).to_contain_text(TITLE)

    assert dialogs == []
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator(BAD_ELEMENTS).count() == 0
    scripts = page.evaluate("[...document.scripts].map(s => s.textContent).filter(t => t.includes('__xss'))")
    assert scripts == []
    page.close()


def _slot_of(page, item_id: str) -> int:
    """The card slot (1-based) that shows ``item_id``."""
    for n in range(1, 6):
        if f'data-item-id="{item_id}"' in page.locator(f"#item-card-{n}").inner_html():
            return n
    raise AssertionError(f"{item_id} is not on a card")
