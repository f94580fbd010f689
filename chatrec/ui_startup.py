"""A placeholder page on the app's port while the services load, so a browser sees progress, not an error.

The first start embeds the whole catalog and a real model takes a while to load: minutes on a
small machine. ``StartupPage`` serves every GET with a small page (HTTP 503, ``Retry-After``) that
lists the start-up steps with the seconds each took, and polls until the real app answers, then
reloads itself. ``app.py`` stops it right before Gradio binds the same port. Standard library only
(it must be up before the heavy imports); it shows progress messages, never data, and serves no
files. If the port is taken it stays quiet and Gradio reports the clash as usual.
"""
from __future__ import annotations

import html
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>chatrec · starting</title>
<style>body{{font-family:system-ui,sans-serif;max-width:640px;margin:12vh auto;padding:0 20px;color:#1e293b}}
h1{{font-size:22px}} li{{margin:6px 0}} .now{{font-weight:600}} .t{{color:#64748b;font-size:13px}}
.bar{{height:4px;background:#e0e7ff;border-radius:4px;overflow:hidden}}
.bar div{{height:4px;width:30%;background:#6366f1;animation:s 1.4s infinite ease-in-out}}
@keyframes s{{0%{{margin-left:-30%}}100%{{margin-left:100%}}}}</style></head>
<body><h1>🧸 chatrec is starting…</h1><div class="bar"><div></div></div>
<p>This page opens the app by itself when it is ready.</p><ol id="steps">{steps}</ol>
<script>
const started = Date.now() - {elapsed_ms};
setInterval(() => {{ const now = document.querySelector('li.now');  // the step in progress ticks
  if (now) now.querySelector('.t').textContent =
    '(' + Math.round((Date.now() - started - Number(now.dataset.began)) / 1000) + ' s so far)'; }}, 500);
async function poll() {{
  try {{ const r = await fetch(location.href, {{cache: 'no-store'}});
    if (r.status !== 503) {{ location.reload(); return; }}
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    document.getElementById('steps').innerHTML = doc.getElementById('steps').innerHTML;
  }} catch (e) {{ /* between this page and the app the port is briefly closed: try again */ }}
  setTimeout(poll, 1000);
}}
setTimeout(poll, 1000);
</script></body></html>"""


class StartupPage:
    """Serve start-up progress on ``host:port`` from a background thread until :meth:`stop`."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.t0 = time.monotonic()
        self.steps: list[tuple[str, float]] = []  # (message, seconds since start when it began)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> bool:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = page.render().encode("utf-8")
                self.send_response(503)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Retry-After", "1")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the terminal for the start-up messages
                pass

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError:
            return False  # port busy or address unavailable: app.py stops with a message
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="startup-page", daemon=True).start()
        return True

    def update(self, message: str) -> None:
        with self._lock:
            self.steps.append((message, time.monotonic() - self.t0))

    def render(self) -> str:
        now = time.monotonic() - self.t0
        with self._lock:
            steps = list(self.steps) or [("Starting…", 0.0)]
        items = []
        for n, (message, began) in enumerate(steps):
            last = n == len(steps) - 1
            took = (now if last else steps[n + 1][1]) - began
            label = f"({took:.0f} s so far)" if last else f"done in {took:.1f} s"
            attrs = f' class=now data-began="{int(began * 1000)}"' if last else ""
            items.append(f'<li{attrs}>{html.escape(message)} <span class="t">{label}</span></li>')
        return PAGE.format(steps="".join(items), elapsed_ms=int(now * 1000))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
