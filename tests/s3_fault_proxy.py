"""A real HTTP proxy in front of moto's S3 (or SQS) that can fail or slow chosen
requests on purpose.

Use it as a context manager and point boto3 (endpoint_url or AWS_ENDPOINT_URL_S3) at
`proxy.url`. `proxy.fail_parts_from = 2` answers every UploadPart with partNumber >= 2
with an HTTP 500 InternalError (not forwarded); `None` passes everything through.
`hold_when` / `release_when` (predicates on "METHOD /path?query") stall matching
requests until a request matching `release_when` arrives, to force a race's order.
`delay(line, headers, body)` returns how many seconds to hold a request before
forwarding it (an SQS action is named in the X-Amz-Target header or the body).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

# Not forwarded either way: they describe one connection, not the request.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "expect", "transfer-encoding", "te", "trailer", "upgrade"}
)
INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message>"
    b"<RequestId>fault-proxy</RequestId></Error>"
)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client killed mid-request (the fault suite's SIGKILL) resets its connection:
        # expected, and not worth a traceback.
        pass


class S3FaultProxy:
    """Forwards S3 requests to `upstream`; `fail_parts_from` switches the fault on."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        assert target.hostname and target.port, upstream
        self.upstream = (target.hostname, target.port)
        self.fail_parts_from: int | None = None
        self.failed: list[str] = []  # "PUT /bucket/key?..." of every request failed on purpose
        self.requests: list[str] = []  # "METHOD /path?query" of every request, in order
        self.hold_when: Callable[[str], bool] | None = None
        self.release_when: Callable[[str], bool] | None = None
        self.hold_timeout = 5.0
        self.held: list[str] = []
        self.delay: Callable[[str, Mapping[str, str], bytes], float] | None = None
        self.delayed: list[str] = []
        self.released = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="s3-fault-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def should_fail(self, method: str, path: str) -> bool:
        if method != "PUT" or self.fail_parts_from is None:
            return False
        query = parse_qs(urlsplit(path).query)
        numbers = query.get("partNumber", [])
        return "uploadId" in query and any(int(n) >= self.fail_parts_from for n in numbers)

    def __enter__(self) -> S3FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.released.set()  # no request stays held
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler_for(proxy: S3FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and Expect: 100-continue handled for us

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            line = f"{self.command} {self.path}"
            proxy.requests.append(line)
            if proxy.release_when and proxy.release_when(line):
                proxy.released.set()
            if proxy.hold_when and proxy.hold_when(line) and not proxy.released.is_set():
                proxy.held.append(line)
                proxy.released.wait(proxy.hold_timeout)
            if proxy.delay is not None:
                seconds = proxy.delay(line, dict(self.headers.items()), body)
                if seconds > 0:
                    proxy.delayed.append(line)
                    time.sleep(seconds)
            if proxy.should_fail(self.command, self.path):
                proxy.failed.append(line)
                self._reply(500, [("Content-Type", "application/xml")], INTERNAL_ERROR)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                kept = [
                    (k, v)
                    for k, v in resp.getheaders()
                    if k.lower() not in HOP_BY_HOP | {"content-length", "server", "date"}
                ]
                # HEAD has no body but its Content-Length is the object's size.
                size = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self._reply(resp.status, kept, data, size)
            finally:
                conn.close()

        def _reply(
            self, status: int, headers: list[tuple[str, str]], body: bytes, size: str | None = None
        ) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", size if size is not None else str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: pytest shows failures, not every request

    return Handler
