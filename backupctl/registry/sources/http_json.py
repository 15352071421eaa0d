"""Registry source: an HTTP(S) endpoint answering JSON, a platform's inventory API.

The answer is a list of app objects, or {"apps": [...]}, with the fields of the TOML
tables. With `registry_token_env` the request carries `Authorization: Bearer
<token>`. TLS is verified (against `registry_ca_file` when set). Redirects are not
followed: one could lead the token or the answer somewhere else, even to plain
HTTP. A refused connection, a timeout or a 5xx is tried again (ATTEMPTS in all);
a 4xx never is: asking again gets the same answer.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from backupctl import __version__
from backupctl.errors import RegistryError
from backupctl.redact import redact_text, redact_url
from backupctl.registry.sources import Entry, RegistrySpec, Retryable, json_type, with_retries

log = logging.getLogger(__name__)

MAX_ANSWER = 64 * 1024 * 1024  # bytes: far more than any fleet's list of apps
_SHAPE = 'a list of apps or an object {"apps": [...]}'


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx code


def _describe(reason: object, timeout: float) -> str:
    """A network failure in a few words, without any secret."""
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    return redact_text(str(reason)) or type(reason).__name__


class HttpJson:
    """An http(s):// registry URL."""

    def __init__(self, spec: RegistrySpec) -> None:
        self._spec = spec
        self.label = redact_url(spec.location.split("#", 1)[0])

    def stamp(self) -> Callable[[], object] | None:
        return None

    def read(self) -> tuple[list[Entry], list[str]]:
        request = self._request()
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self._tls()), _NoRedirects()
        )
        body = with_retries(self.label, lambda: self._fetch(opener, request))
        return self._entries(body)

    def _request(self) -> urllib.request.Request:
        request = urllib.request.Request(
            self._spec.location,
            headers={"Accept": "application/json", "User-Agent": f"backupctl/{__version__}"},
        )
        name = self._spec.token_env
        if name:
            token = os.environ.get(name, "").strip()
            if not token:
                raise RegistryError(
                    [f"registry_token_env: ${name} is not set or empty (the registry's token)"]
                )
            if not (token.isascii() and token.isprintable()):  # a header can't carry it
                raise RegistryError(
                    [f"registry_token_env: ${name} holds a line break or a non-ASCII character"]
                )
            # Unredirected: never sent on to wherever a redirect points (none is followed).
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        return request

    def _tls(self) -> ssl.SSLContext:
        ca_file = self._spec.ca_file
        try:
            return ssl.create_default_context(cafile=ca_file)
        except FileNotFoundError:
            raise RegistryError([f"registry_ca_file: {ca_file}: no such file"]) from None
        except ssl.SSLError:
            raise RegistryError(
                [f"registry_ca_file: {ca_file}: not a PEM file of CA certificates"]
            ) from None
        except OSError as exc:  # not readable, a folder
            raise RegistryError([f"registry_ca_file: {ca_file}: {exc.strerror}"]) from None

    def _fetch(
        self, opener: urllib.request.OpenerDirector, request: urllib.request.Request
    ) -> bytes:
        timeout = self._spec.timeout
        deadline = time.monotonic() + timeout
        try:
            with opener.open(request, timeout=timeout) as answer:
                chunks: list[bytes] = []
                size = 0
                while chunk := answer.read(1 << 16):
                    size += len(chunk)
                    if size > MAX_ANSWER:
                        raise RegistryError(
                            [f"{self.label}: the answer is larger than {MAX_ANSWER >> 20} MiB"]
                        )
                    if time.monotonic() > deadline:  # a server that trickles
                        raise Retryable(f"the answer took longer than {timeout:g}s")
                    chunks.append(chunk)
                return b"".join(chunks)
        except urllib.error.HTTPError as exc:
            exc.close()
            location = exc.headers.get("Location") if exc.headers else None
            raise self._refused(exc.code, exc.reason, location) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise self._untrusted(exc.reason) from None
            raise Retryable(_describe(exc.reason, timeout)) from None
        except ssl.SSLCertVerificationError as exc:
            raise self._untrusted(exc) from None
        except (OSError, http.client.HTTPException) as exc:  # mid-answer: reset, cut short
            raise Retryable(_describe(exc, timeout) or "the connection broke") from None

    def _refused(self, code: int, reason: object, location: str | None) -> Exception:
        answered = f"{self.label}: the registry answered {code} {reason}".rstrip()
        if code >= 500:
            return Retryable(f"it answered {code} {reason}".rstrip())
        if code in (401, 403):
            name = self._spec.token_env
            if name:
                return RegistryError(
                    [f"{answered}: the token in ${name} (registry_token_env) was refused"]
                )
            return RegistryError(
                [f"{answered}: it needs a token: set registry_token_env to the variable holding it"]
            )
        if 300 <= code < 400:
            shown = redact_url(location) if location else "elsewhere"
            return RegistryError(
                [f"{answered} (a redirect to {shown}): set registry to the URL it names"]
            )
        return RegistryError([f"{answered}: check the registry URL"])

    def _untrusted(self, exc: ssl.SSLCertVerificationError) -> RegistryError:
        why = exc.verify_message or "certificate verify failed"
        fix = (
            "is registry_ca_file the CA that signed it?"
            if self._spec.ca_file
            else "set registry_ca_file to the CA bundle that signed it"
        )
        return RegistryError([f"{self.label}: TLS certificate not trusted ({why}): {fix}"])

    def _entries(self, body: bytes) -> tuple[list[Entry], list[str]]:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
            if isinstance(exc, json.JSONDecodeError):
                detail += f" at line {exc.lineno} column {exc.colno}"
            raise RegistryError([f"{self.label}: the answer is not JSON ({detail})"]) from None
        if isinstance(doc, dict):
            unknown = sorted(set(doc) - {"apps"})
            if unknown:
                keys = ", ".join(repr(k) for k in unknown)
                raise RegistryError(
                    [f"{self.label}: unknown top-level key {keys} (the answer is {_SHAPE})"]
                )
            if "apps" not in doc:
                raise RegistryError([f"{self.label}: no 'apps' in the answer (it is {_SHAPE})"])
            doc = doc["apps"]
        if not isinstance(doc, list):
            raise RegistryError(
                [f"{self.label}: the answer must be {_SHAPE}, got {json_type(doc)}"]
            )
        return [Entry(item, self.label, n) for n, item in enumerate(doc, start=1)], []
