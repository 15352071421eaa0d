"""A local HTTP server that records the JSON notifications Apprise's json:// posts.

`NotifyServer().url` is a json:// URL to it (with a secret-looking path, so tests
can check that the path never shows); `.posts` are the bodies received, in order.
`.status` is the HTTP status it answers with (500 to make every send fail).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_PATH = "/hooks/5ecret-n0tify-t0ken-0123456789"


class NotifyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 200
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """The Apprise URL that posts JSON here."""
        return f"json://127.0.0.1:{self.port}{SECRET_PATH}"

    def record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.paths.append(path)
            self.posts.append(body)

    def events(self) -> list[str]:
        """The posts' titles, in order (a short way to compare what was sent)."""
        with self._lock:
            return [str(p.get("title", "")) for p in self.posts]

    def __enter__(self) -> NotifyServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        assert isinstance(self.server, NotifyServer)
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.status == 200:
            self.server.record(self.path, json.loads(data))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass
