"""A real HTTP(S) registry API for the tests: http.server in a thread on 127.0.0.1,
answering what the test sets, checking a Bearer token, recording each request; a
certificate authority of the test's own for HTTPS; the URL of a query registry."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode


@dataclass
class Answer:
    """What the server says to the next requests."""

    status: int = 200
    body: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=dict)


class RegistryApi:
    """The server's state: the answer, the token it wants, the requests it got."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.answer = Answer()
        self.first: list[Answer] = []  # answers to the next requests, before `answer`
        self.requests: list[dict[str, str]] = []  # each request's headers
        self.lock = threading.Lock()
        self.url = ""

    def serve_apps(self, apps: Any) -> None:
        """Answer 200 with `apps` as JSON (a list, or {"apps": [...]})."""
        self.answer = Answer(200, json.dumps(apps).encode())

    def serve(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.answer = Answer(status, body, headers)

    def auths(self) -> list[str | None]:
        with self.lock:
            return [r.get("authorization") for r in self.requests]


def _handler(api: RegistryApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with api.lock:
                api.requests.append({k.lower(): v for k, v in self.headers.items()})
                answer = api.first.pop(0) if api.first else api.answer
            if api.token is not None and self.headers.get("Authorization") != f"Bearer {api.token}":
                answer = Answer(401, b'{"error": "unauthorized"}')
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test's output stays its own

    return Handler


@contextmanager
def registry_api(
    token: str | None = None, tls: ssl.SSLContext | None = None, path: str = "/v1/apps"
) -> Iterator[RegistryApi]:
    """A registry API on a free port of 127.0.0.1 (HTTPS with `tls`), stopped after."""
    api = RegistryApi(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    api.url = f"{scheme}://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def as_url(conninfo: str) -> str:
    """A libpq key=value string as the postgresql:// URL a registry is given as."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(conninfo)
    user, dbname = quote(str(params.pop("user", ""))), quote(str(params.pop("dbname", "")))
    password = params.pop("password", None)
    auth = f"{user}:{quote(str(password))}@" if password else f"{user}@"
    query = urlencode({k: str(v) for k, v in params.items()})
    return f"postgresql://{auth}/{dbname}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class LocalCa:
    """A CA made for one test, and a server certificate for 127.0.0.1 it signed."""

    ca_file: Path  # the CA certificate (PEM): what registry_ca_file names
    cert_file: Path  # the server's certificate and key (PEM)
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_ca(folder: Path, name: str = "backupctl test CA") -> LocalCa:
    """Write a new CA and a certificate for 127.0.0.1 and localhost into `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return LocalCa(ca_file, cert_file, key_file)
