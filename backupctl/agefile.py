"""Writing age files (age-encryption.org/v1) to X25519 recipients, on the dump's own thread.

The format, as its specification (C2SP age) defines it:

- a header: the version line, one `-> X25519` stanza per recipient (an ephemeral
  X25519 share, and the 16-byte file key sealed with ChaCha20-Poly1305 under
  HKDF-SHA256(shared secret, salt = share || recipient, "age-encryption.org/v1/X25519")),
  `---` and the header's HMAC-SHA256 under HKDF(file key, "header");
- a 16-byte nonce, then the payload in 64 KiB chunks, each sealed with
  ChaCha20-Poly1305 under HKDF(file key, salt = nonce, "payload"); a chunk's nonce is
  its 11-byte big-endian counter and a last-chunk flag byte. The last chunk is short
  (or full, or, for an empty payload only, empty).

Why backupctl writes this itself instead of calling pyrage's encrypt_io: encrypt_io pulls
from a reader in a thread of its own and holds the GIL while it encrypts, so joining it to
the dump's writes took a pipe and a thread whose every handoff waits for the GIL (0.88x of
the unencrypted backup's throughput, 0.58x on a loaded machine). Here each chunk is sealed
by the thread that wrote it, with `cryptography`'s primitives (OpenSSL): no thread, no
pipe, at most one chunk held. Reading age files stays pyrage's (backupctl.encryption), and
the tests prove these files open with the reference `age` tool and with pyrage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION_LINE = b"age-encryption.org/v1\n"
X25519_LABEL = b"age-encryption.org/v1/X25519"
CHUNK = 64 * 1024  # plaintext bytes per payload chunk (the format's, not a choice)
FILE_KEY_SIZE = 16
NONCE_SIZE = 16
COUNTER_SIZE = 11
STANZA_COLUMNS = 64
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


# -- recipients -------------------------------------------------------------------------------


def _polymod(values: Sequence[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                check ^= generator
    return check


def x25519_public_key(recipient: str) -> bytes:
    """The 32-byte X25519 public key of an age recipient (`age1…`, Bech32 with its
    checksum); ValueError for anything else, and for a low-order key (every shared
    secret with it is zero: nothing would be secret)."""
    text = recipient.strip()
    if text != text.lower() and text != text.upper():
        raise ValueError("not an age recipient: mixed case")
    text = text.lower()
    hrp, _, data = text.rpartition("1")
    if hrp != "age" or len(data) < 6 or any(c not in _BECH32 for c in data):
        raise ValueError("not an age recipient (age1…)")
    values = [_BECH32.index(c) for c in data]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    if _polymod(expanded + values) != 1:
        raise ValueError("not an age recipient: bad checksum")
    acc = bits = 0
    key = bytearray()
    for value in values[:-6]:  # 5-bit groups to bytes; the last 6 are the checksum
        acc = (acc << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            key.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1) or len(key) != 32:
        raise ValueError("not an age recipient: not a 32-byte X25519 key")
    try:  # cryptography refuses an all-zero shared secret
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(bytes(key)))
    except ValueError:
        raise ValueError("not an age recipient: a low-order X25519 key") from None
    return bytes(key)


# -- the header -------------------------------------------------------------------------------


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")  # age's base64: standard alphabet, no padding


def _hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def _x25519_stanza(public: bytes, file_key: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    wrap_key = _hkdf(shared, share + public, X25519_LABEL)
    body = _b64(ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None))
    assert len(body) < STANZA_COLUMNS  # one body line, shorter than a full one
    return b"-> X25519 " + _b64(share) + b"\n" + body + b"\n"


def header(public_keys: Sequence[bytes], file_key: bytes) -> bytes:
    """The age header that gives `file_key` to each of `public_keys`, with its MAC."""
    if not public_keys:
        raise ValueError("encryption needs at least one recipient")
    head = VERSION_LINE + b"".join(_x25519_stanza(k, file_key) for k in public_keys) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), head, hashlib.sha256).digest()
    return head + b" " + _b64(mac) + b"\n"


# -- the payload ------------------------------------------------------------------------------


class AgeWriter:
    """Writes one age file to `out`: the header at once, then each 64 KiB chunk as it
    fills. `finish()` seals the last chunk: until then the file is incomplete (and age
    refuses it), which is what an interrupted stream must be. An error of `out` is
    raised as itself, from the write that met it."""

    def __init__(self, out: Writer, public_keys: Sequence[bytes]) -> None:
        file_key = os.urandom(FILE_KEY_SIZE)
        nonce = os.urandom(NONCE_SIZE)
        self._out = out
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        # 1 to CHUNK bytes once anything was written: a full chunk waits here until
        # more data shows it was not the last.
        self._pending = bytearray()
        self._counter = 0
        self._finished = False
        out.write(header(public_keys, file_key) + nonce)

    def write(self, data: bytes, /) -> int:
        """Encrypt `data` (any length); return its length."""
        if self._finished:
            raise ValueError("write to a finished age file")
        view = memoryview(data).cast("B")
        size = len(view)
        if self._pending and len(self._pending) < CHUNK:
            room = CHUNK - len(self._pending)
            self._pending += view[:room]
            view = view[room:]
        if not view:
            return size
        if self._pending:  # full, and more follows
            self._seal(self._pending, last=False)
            self._pending = bytearray()
        while len(view) > CHUNK:  # sealed straight from the caller's buffer
            self._seal(view[:CHUNK], last=False)
            view = view[CHUNK:]
        self._pending += view
        return size

    def finish(self) -> None:
        """Seal the last chunk: the file is whole."""
        if not self._finished:
            self._finished = True
            self._seal(self._pending, last=True)
            self._pending = bytearray()

    def _seal(self, chunk: bytes | bytearray | memoryview, *, last: bool) -> None:
        nonce = self._counter.to_bytes(COUNTER_SIZE, "big") + (b"\x01" if last else b"\x00")
        self._counter += 1
        self._out.write(self._aead.encrypt(nonce, chunk, None))
