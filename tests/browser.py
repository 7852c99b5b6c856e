"""Real headless Chromium for testing the pages we serve.

The app runs in a thread on a free loopback port (werkzeug's server), and
Chromium loads it with the flags this sandbox needs (no background
networking: the machine has no internet). ``make test`` installs Chromium
with apt when running as root.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

from werkzeug.serving import make_server

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@contextmanager
def live_server(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def dump_dom(url: str, *, budget_ms: int = 15000) -> str:
    """The page's DOM after its scripts ran (Chromium's virtual time budget)."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout
