"""Time ``python app.py --model none`` from launch to (a) the first HTTP response on / (the start-up
progress page) and (b) the app itself answering /config with 200.

    python scripts/startup_time.py HOME [extra app.py flags]

A fresh HOME gives a cold start (the catalog is embedded); run it again for a warm one.
"""
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
home, extra = sys.argv[1], sys.argv[2:]
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
t0 = time.perf_counter()
p = subprocess.Popen([sys.executable, "app.py", "--model", "none", "--home", home, "--port", str(port), *extra],
                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def status(path):
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


first = ready = None
try:
    while time.perf_counter() - t0 < 600 and ready is None and p.poll() is None:
        if first is None and status("/") is not None:
            first = time.perf_counter() - t0
        if status("/config") == 200:
            ready = time.perf_counter() - t0
        time.sleep(0.05)
finally:
    p.terminate()
    p.wait()


def seconds(t):
    return "never (within 600 s, or the app exited)" if t is None else f"{t:.1f} s"


print(f"first response on / {seconds(first)}; app ready (/config 200) {seconds(ready)}")
sys.exit(0 if ready is not None else 1)
