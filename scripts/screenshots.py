"""Take the README screenshots: the chat after a real two-turn conversation, and the Insights tab.

    python scripts/screenshots.py [--out docs/screenshots] [--home .chatrec] [--url URL]

Without ``--url`` it starts ``app.py --model none`` on a free port with a fresh database in a
temporary folder (the embedding cache in ``--home`` is reused), has the conversation, rates a
few items and answers, runs three more short conversations so Insights has something to show,
and writes ``chat.png`` and ``insights.png``. Every number in the shots comes from these clicks.
Needs Playwright and Debian's chromium (/usr/bin/chromium).
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CONVERSATION = ["A wooden train set for my 3-year-old, under £40",
                "Lovely. No Thomas please, she prefers Brio or Bigjigs"]
OTHERS = ["Something with a remote control for a 10 year old, but no Lego",
          "A 1000 piece jigsaw puzzle for my gran",
          "A soft plush toy for a newborn, around £15"]


def start_app(home: Path, db_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "app.py", "--model", "none", "--home", str(home), "--port", str(port),
           "--db", f"sqlite:///{db_dir / 'screenshots.db'}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        print(line, end="", flush=True)
        if "Running on local URL" in line:
            # keep draining the app's output so a full pipe never blocks it
            threading.Thread(target=lambda: [print(x, end="") for x in proc.stdout], daemon=True).start()
            return proc, f"http://127.0.0.1:{port}/"
    proc.terminate()
    raise SystemExit("the app did not start; see the output above")


def send(page, text: str, turn: int) -> None:
    page.locator("#msg textarea").fill(text)
    page.locator("#send").click()
    page.locator("#status", has_text=f"Turn {turn} ·").wait_for()


def converse(page) -> None:
    for turn, text in enumerate(CONVERSATION, 1):
        send(page, text, turn)
    page.locator("#item-up-1").click()
    page.locator("#status", has_text="👍 Saved").wait_for()


def other_conversations(page) -> None:
    for n, text in enumerate(OTHERS):
        page.locator("#new-chat").click()
        page.locator("#status", has_text="Started a new conversation").wait_for()
        send(page, text, 1)
        page.locator(f"#chat button[aria-label='{'Dislike' if n == 2 else 'Like'}']").last.click()
        page.locator("#status", has_text="on that answer").wait_for()
        page.locator("#item-up-1").click()
        page.locator("#status", has_text="👍 Saved").wait_for()
        if n != 1:
            page.locator("#item-down-2").click()
            page.locator("#status", has_text="👎 Saved").wait_for()


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
        page.set_default_timeout(60_000)
        page.goto(url)
        other_conversations(page)  # first, so the chat shot shows the main conversation
        page.locator("#new-chat").click()
        converse(page)
        page.wait_for_timeout(4500)  # let the toasts fade
        page.screenshot(path=str(out / "chat.png"), full_page=True)
        page.get_by_role("tab", name="Insights").click()
        page.locator("#insights-timeline img").wait_for()
        page.locator("#conv-picker input").click()
        page.get_by_role("option").first.click()
        page.locator("#conv-replay .replay-turn").first.wait_for()
        page.wait_for_timeout(1500)  # plots finish drawing
        page.screenshot(path=str(out / "insights.png"), full_page=True)
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--home", type=Path, default=ROOT / ".chatrec", help="embedding cache to reuse")
    parser.add_argument("--url", help="use an app that is already running (its database will get the clicks)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.url:
        shoot(args.url, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="chatrec-shots-") as tmp:
            proc, url = start_app(args.home, Path(tmp))
            try:
                shoot(url, args.out)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print(f"wrote {args.out / 'chat.png'} and {args.out / 'insights.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
