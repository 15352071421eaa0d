"""Keep secrets out of output: mask URL passwords and known secret values."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@host  -> scheme://user:***@host
# (greedy up to the last @ before the host: an unencoded @ in a password stays masked)
_URL_PASSWORD = re.compile(r"(?P<prefix>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>[^/\s]+)@")
# key=value pairs in libpq strings and query strings
# (also PGPASSWORD=..., client_secret=..., access_token=...)
# (and the JSON/YAML forms: "password": "x", password: x; and AWS keys and signatures)
_KV_PASSWORD = re.compile(
    r"(?i)\b([a-z0-9_-]*(?:password|passwd|pwd|secret|token|secret_access_key|signature"
    r"|credential))"
    r"(\"?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&,}]+)"
)
# Headers as botocore and urllib3 log them, a Python dict's repr:
# 'X-Amz-Security-Token': b'...', 'Authorization': b'AWS4-HMAC-SHA256 Credential=...'
_HEADER_REPR = re.compile(
    r"(?i)(['\"](?:(?:proxy-)?authorization|cookie|set-cookie|x-amz-security-token"
    r"|[a-z0-9-]*(?:token|secret|password|signature|credential))['\"]\s*:\s*b?)"
    r"(['\"])(?:(?!\2).)*\2"
)
# ... and as plain lines: "Authorization: Bearer ..." (to the end of the line).
_HEADER_LINE = re.compile(r"(?im)^(\s*(?:proxy-)?authorization\s*:\s*)\S.*$")


def redact_url(url: str) -> str:
    """Return `url` with any password replaced by ***, for display."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None:
        return redact_text(url)
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    host = netloc[1] if len(netloc) == 2 else ""
    return redact_text(urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}")))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords, password=... pairs and each of `secrets` in `text`."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('prefix')}{MASK}@", text)
    text = _HEADER_REPR.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text)
    text = _HEADER_LINE.sub(lambda m: f"{m.group(1)}{MASK}", text)
    return _KV_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
