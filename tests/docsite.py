"""Building the documentation for the tests, and serving the built site on a loopback port.

The builds run Sphinx in this process with warnings as errors (``-W``), as
``make docs`` does; the session fixtures in ``conftest.py`` run each builder
once per test session.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def build(builder: str, out: Path) -> tuple[int, str]:
    """Run sphinx-build with warnings as errors from scratch; return its status and what it printed."""
    from sphinx.cmd import build as sphinx_build

    log = io.StringIO()
    args = ["-b", builder, "-W", "--keep-going", "-q", "-E", "-d", str(out / ".doctrees"), str(DOCS), str(out)]
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        status = sphinx_build.build_main(args)
    return status, log.getvalue()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a port the system picks); yield the base URL.

    Over HTTP, not file://, so that the browser asks for what a visitor's
    would (``/favicon.ico``) and a missing file is a 404 it reports.
    """
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
