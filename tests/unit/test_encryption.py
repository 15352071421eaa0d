"""backupctl.encryption and backupctl.agefile: recipients and identities, and the
streams both ways (age files written by backupctl.agefile and read by real pyrage, real
pipes and threads; the age tool where it is installed)."""

from __future__ import annotations

import errno
import io
import os
import subprocess
from pathlib import Path

import pyrage
import pytest

from backupctl.agefile import CHUNK, x25519_public_key
from backupctl.artifacts import parse_artifact_key
from backupctl.config import load_settings
from backupctl.encryption import (
    Undecryptable,
    WrongIdentity,
    decrypting,
    encrypting,
    load_identities,
    read_recipients_file,
    recipient_problem,
)
from backupctl.errors import ConfigError, UsageError
from backupctl.registry import load_registry
from tests.tools import need_tool


def keypair(tmp_path: Path, name: str = "key.txt") -> tuple[Path, str]:
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / name
    path.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    path.chmod(0o600)
    return path, str(identity.to_public())


def encrypt(data: bytes, recipient: str | list[str], chunk: int = 100_000) -> bytes:
    out = io.BytesIO()
    with encrypting(out, [recipient] if isinstance(recipient, str) else recipient) as sink:
        for i in range(0, len(data), chunk):
            sink.write(data[i : i + chunk])
    return out.getvalue()


def test_a_stream_round_trips_in_chunks_of_any_size(tmp_path: Path) -> None:
    key, recipient = keypair(tmp_path)
    data = os.urandom(3 << 20) + b"tail"

    stored = encrypt(data, recipient, chunk=77_777)

    assert stored.startswith(b"age-encryption.org/v1\n-> X25519 ")
    with decrypting(io.BytesIO(stored), load_identities(str(key))) as plain:
        assert plain.read() == data


def test_an_empty_stream_is_still_a_whole_age_file(tmp_path: Path) -> None:
    key, recipient = keypair(tmp_path)
    stored = encrypt(b"", recipient)
    with decrypting(io.BytesIO(stored), load_identities(str(key))) as plain:
        assert plain.read() == b""


def test_the_storages_error_is_raised_as_itself(tmp_path: Path) -> None:
    _key, recipient = keypair(tmp_path)

    class Full:
        written = 0

        def write(self, data: bytes) -> int:
            self.written += len(data)
            if self.written > 1 << 20:
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(data)

    with pytest.raises(OSError) as excinfo, encrypting(Full(), [recipient]) as sink:
        for _ in range(100):
            sink.write(os.urandom(1 << 16))
    assert excinfo.value.errno == errno.ENOSPC


def test_an_error_of_the_dump_ends_the_encryption_and_is_raised(tmp_path: Path) -> None:
    _key, recipient = keypair(tmp_path)
    out = io.BytesIO()
    with pytest.raises(RuntimeError, match="pg_dump died"), encrypting(out, [recipient]) as sink:
        sink.write(b"x" * 500_000)
        raise RuntimeError("pg_dump died")


def test_a_wrong_identity_a_truncation_and_a_flipped_byte_are_told_apart(
    tmp_path: Path,
) -> None:
    key, recipient = keypair(tmp_path)
    other, _ = keypair(tmp_path, "other.txt")
    stored = encrypt(os.urandom(300_000), recipient)

    with pytest.raises(WrongIdentity, match="encrypted to other recipients"):
        decrypting(io.BytesIO(stored), load_identities(str(other))).read()
    with pytest.raises(Undecryptable, match="damaged or truncated"):
        reader = decrypting(io.BytesIO(stored[:-1000]), load_identities(str(key)))
        while reader.read(1 << 16):
            pass
    flipped = bytearray(stored)
    flipped[200_000] ^= 1
    with pytest.raises(Undecryptable):
        reader = decrypting(io.BytesIO(bytes(flipped)), load_identities(str(key)))
        while reader.read(1 << 16):
            pass


def test_closing_a_reader_early_stops_its_thread(tmp_path: Path) -> None:
    key, recipient = keypair(tmp_path)
    stored = encrypt(os.urandom(5 << 20), recipient)
    reader = decrypting(io.BytesIO(stored), load_identities(str(key)))
    assert len(reader.read(10)) == 10
    reader.close()  # returns: the thread ended at its next write


# Payload sizes around age's 64 KiB chunks: the last chunk short, full or (only for
# nothing at all) empty.
BOUNDARIES = (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5)


def test_every_chunk_boundary_decrypts_with_pyrage_whatever_the_write_sizes(
    tmp_path: Path,
) -> None:
    key, recipient = keypair(tmp_path)
    identities = load_identities(str(key))
    for size in BOUNDARIES:
        data = os.urandom(size)
        for write in (1000, CHUNK, CHUNK + 1, 5 * CHUNK):
            stored = encrypt(data, recipient, chunk=write)
            assert pyrage.decrypt(stored, identities.keys()) == data, (size, write)


def test_each_of_several_recipients_opens_the_file_and_an_incomplete_one_is_refused(
    tmp_path: Path,
) -> None:
    keys = [keypair(tmp_path, f"key{n}.txt") for n in range(3)]
    data = os.urandom(2 * CHUNK + 10)
    stored = encrypt(data, [recipient for _, recipient in keys])
    for path, _ in keys:
        with decrypting(io.BytesIO(stored), load_identities(str(path))) as plain:
            assert plain.read() == data

    out = io.BytesIO()
    with pytest.raises(RuntimeError), encrypting(out, [keys[0][1]]) as sink:
        sink.write(data)
        raise RuntimeError("the dump failed")  # the last chunk is never sealed
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(out.getvalue(), load_identities(str(keys[0][0])).keys())


def test_recipient_keys_are_read_as_pyrage_reads_them_and_a_low_order_one_is_refused() -> None:
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    assert x25519_public_key(recipient) == x25519_public_key(recipient.upper())
    assert len(x25519_public_key(recipient)) == 32
    with pytest.raises(ValueError, match="bad checksum"):
        x25519_public_key(recipient[:-1] + ("q" if recipient[-1] != "q" else "p"))
    # The all-zero key: pyrage takes it, but every shared secret with it is zero.
    zero = "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z"
    pyrage.x25519.Recipient.from_str(zero)
    assert recipient_problem(zero) == (
        f"not an age recipient: a low-order X25519 key: {zero[:20] + '…'!r}"
    )


def test_interop_with_the_age_tool_both_ways(tmp_path: Path) -> None:
    age = need_tool("age", "apt-get install age")
    key, recipient = keypair(tmp_path)
    data = os.urandom(200_000)

    ours = tmp_path / "ours.age"
    ours.write_bytes(encrypt(data, recipient))
    assert (
        subprocess.run(
            [age, "-d", "-i", str(key), str(ours)], capture_output=True, check=True
        ).stdout
        == data
    )

    theirs = subprocess.run(
        [age, "-r", recipient], input=data, capture_output=True, check=True
    ).stdout
    with decrypting(io.BytesIO(theirs), load_identities(str(key))) as plain:
        assert plain.read() == data

    other, second = keypair(tmp_path, "other.txt")
    for size in BOUNDARIES:
        data = os.urandom(size)
        ours.write_bytes(encrypt(data, [recipient, second], chunk=50_000))
        for identity in (key, other):
            done = subprocess.run([age, "-d", "-i", str(identity), str(ours)], capture_output=True)
            assert (done.returncode, done.stdout) == (0, data), (size, done.stderr)


def test_recipients_are_checked_and_a_problem_names_the_value_shortened() -> None:
    good = str(pyrage.x25519.Identity.generate().to_public())
    assert recipient_problem(good) is None
    assert recipient_problem("ssh-ed25519 AAAA") == (
        "not an age recipient: 'ssh-ed25519 AAAA' (expected an X25519 public key, age1…)"
    )
    problem = recipient_problem(good[:-1] + ("q" if good[-1] != "q" else "p"))
    assert problem is not None and problem.startswith(f"not an age recipient: {good[:20]!r}"[:-1])


def test_a_recipients_file_skips_comments_and_names_each_bad_line(tmp_path: Path) -> None:
    good = str(pyrage.x25519.Identity.generate().to_public())
    path = tmp_path / "recipients.txt"
    path.write_text(f"# ops\n\n{good}\n  # old key:\nage1nope\n")

    found, problems = read_recipients_file(str(path))

    assert found == [good]
    assert problems == [f"{path}:5: not an age recipient: 'age1nope' (invalid Bech32 encoding)"]
    path.write_text("# nothing yet\n")
    assert read_recipients_file(str(path)) == ([], [f"{path}: lists no recipient"])
    assert read_recipients_file(str(tmp_path / "gone")) == (
        [],
        [f"{tmp_path / 'gone'}: no such recipients file"],
    )


def test_an_identity_file_that_cannot_be_used_is_exit_2_and_never_quoted(tmp_path: Path) -> None:
    key, _ = keypair(tmp_path)
    secret = key.read_text().splitlines()[-1]
    broken = tmp_path / "broken.txt"
    broken.write_text(f"# mine\n{secret[:-2]}\n")
    with pytest.raises(UsageError) as excinfo:
        load_identities(str(broken))
    assert str(excinfo.value) == (
        f"--identity {broken}: line 2 is not an age identity "
        "(AGE-SECRET-KEY-1…; passphrase-protected and SSH keys are not supported)"
    )
    assert secret[:-2] not in str(excinfo.value)
    empty = tmp_path / "empty.txt"
    empty.write_text("# no key here\n")
    with pytest.raises(UsageError, match="holds no age identity"):
        load_identities(str(empty))
    with pytest.raises(UsageError, match="no such file"):
        load_identities(str(tmp_path / "missing.txt"))
    assert secret not in repr(load_identities(str(key)))


def test_settings_take_recipients_from_the_file_the_environment_and_a_recipients_file(
    tmp_path: Path,
) -> None:
    a, b, c = (str(pyrage.x25519.Identity.generate().to_public()) for _ in range(3))
    (tmp_path / "r.txt").write_text(f"{b}\n{a}\n")
    config = tmp_path / "backupctl.toml"
    config.write_text(f'[encryption]\nrecipients = ["{a}"]\nrecipients_file = "r.txt"\n')

    assert load_settings(str(config), env={}).recipients == (a, b)
    env = {"BACKUPCTL_ENCRYPTION_RECIPIENTS": f"{c}, {a}"}
    assert load_settings(str(config), env=env).recipients == (c, a, b)
    assert load_settings(None, env={}).recipients == ()
    config.write_text('[encryption]\nrecipients = "age1"\n')
    with pytest.raises(ConfigError) as excinfo:
        load_settings(str(config), env={})
    assert excinfo.value.problems[0].startswith(
        f"{config}: [encryption] recipients: item 1: not an age recipient: 'age1'"
    )


def test_a_registry_app_may_name_its_own_recipients_validated_like_every_field(
    tmp_path: Path,
) -> None:
    good = str(pyrage.x25519.Identity.generate().to_public())
    path = tmp_path / "apps.toml"
    path.write_text(
        f'[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\nrecipients = ["{good}"]\n'
        '\n[[app]]\nid = "b"\nkind = "command"\nargv = ["true"]\nrecipients = []\n'
        '\n[[app]]\nid = "c"\nkind = "command"\nargv = ["true"]\nrecipient = "x"\n'
    )
    with pytest.raises(ConfigError) as excinfo:
        load_registry(str(path))
    assert excinfo.value.problems == [
        f"{path}:7: app 'b': recipients: must be a non-empty list of age recipients, "
        'e.g. ["age1…"]',
        f"{path}:13: app 'c': unknown field 'recipient' for kind 'command' "
        "(known: after, allow_empty, argv, before, drill_argv, enabled, id, kind, "
        "recipients, storage)",
    ]
    path.write_text(
        f'[[app]]\nid = "a"\nkind = "command"\nargv = ["true"]\nrecipients = ["{good}"]\n'
    )
    (app,) = load_registry(str(path))
    assert app.recipients == (good,)


def test_encrypted_artifact_keys_parse_like_plain_ones() -> None:
    key = "shop/2026-11-29/shop-2026-11-29-b17-a1.pgdump.zst.age"
    assert parse_artifact_key(key) == ("shop", 17)
    assert parse_artifact_key("shop/2026-11-29/.shop-2026-11-29-b17-a2.tar.zst.age.0a1b.tmp") == (
        "shop",
        17,
    )
    assert parse_artifact_key("shop/2026-11-29/shop-2026-11-29-b17-a1.pgdump.age") is None
