"""Client-side encryption with age: the real CLI, a real ledger, real pg_dump, moto S3,
and the reference `age` tool for interoperability both ways."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest
import zstandard

from tests.conftest import S3, Setup
from tests.e2e.conftest import MakeDb
from tests.e2e.test_postgres_and_restore import fingerprint, pg_app, seed_shop
from tests.tools import need_tool

NIGHT = "2026-11-28"
CANARY = "canary-Plaintext-7f3e9a"
AGE = "apt-get install age"


@dataclass(frozen=True)
class Key:
    """An age key pair: the identity file (0600) and its recipient."""

    identity: Path
    recipient: str
    secret: str


def make_key(folder: Path, name: str = "key.txt") -> Key:
    identity = pyrage.x25519.Identity.generate()
    path = folder / name
    secret = str(identity)
    path.write_text(f"# created: for a test\n# public key: {identity.to_public()}\n{secret}\n")
    path.chmod(0o600)
    return Key(path, str(identity.to_public()), secret)


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return make_key(tmp_path)


def command_app(app_id: str, code: str, extra: str = "") -> str:
    return (
        f'\n[[app]]\nid = "{app_id}"\nkind = "command"\n'
        f'argv = [{json.dumps(sys.executable)}, "-c", {json.dumps(code)}]\n{extra}'
    )


def files_app(app_id: str, path: Path, extra: str = "") -> str:
    return f'\n[[app]]\nid = "{app_id}"\nkind = "files"\npath = "{path}"\n{extra}'


def canary_code(repeat: int = 20_000) -> str:
    # Compressible text with the canary all through it: zstd alone keeps it readable.
    return f"import sys; sys.stdout.write(({CANARY!r} + ' and some words\\n') * {repeat})"


def write_config(setup: Setup, text: str) -> Path:
    path = setup.root / "backupctl.toml"
    path.write_text(text)
    setup.env["BACKUPCTL_CONFIG"] = str(path)
    return path


def artifact_uri(setup: Setup, app_id: str) -> str:
    rows = setup.query(
        "SELECT artifact_uri FROM backupctl.backups WHERE app_id = %s AND status = 'succeeded'",
        app_id,
    )
    assert len(rows) == 1
    return str(rows[0][0])


def artifact_path(setup: Setup, app_id: str) -> Path:
    return Path(artifact_uri(setup, app_id).removeprefix("file://"))


def test_an_encrypted_artifact_holds_no_plaintext_and_the_age_tool_decrypts_it(
    setup: Setup, key: Key
) -> None:
    age = need_tool("age", AGE)
    write_config(setup, f'[encryption]\nrecipients = ["{key.recipient}"]\n')
    setup.write_registry(command_app("notes", canary_code()))

    result = setup.cli("run-nightly", "--date", NIGHT)

    assert result.returncode == 0, result.stdout + result.stderr
    path = artifact_path(setup, "notes")
    assert path.name == f"notes-{NIGHT}-b1-a1.out.zst.age"
    stored = path.read_bytes()
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert CANARY.encode() not in stored
    # The unencrypted path would have kept the canary readable in the zstd stream:
    assert CANARY.encode() in zstandard.ZstdCompressor(level=3).compress(
        ((CANARY + " and some words\n") * 20_000).encode()
    )
    decrypted = subprocess.run(
        [age, "-d", "-i", str(key.identity), str(path)], capture_output=True, check=True
    ).stdout
    assert decrypted.startswith(b"\x28\xb5\x2f\xfd")  # the zstd stream, as stored unencrypted
    plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(decrypted)).read()
    assert plain == ((CANARY + " and some words\n") * 20_000).encode()
    assert setup.files() == [f"notes/{NIGHT}/{path.name}"]  # no temporary file, nothing else


def test_restore_with_identity_round_trips_every_kind_and_the_per_app_override(
    setup: Setup, tmp_path: Path, pg_server_url: str, make_db: MakeDb
) -> None:
    fleet = make_key(tmp_path, "fleet.txt")
    own = make_key(tmp_path, "own.txt")
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# the restore machine's key\n\n{fleet.recipient}\n")
    write_config(setup, '[encryption]\nrecipients_file = "recipients.txt"\n')
    source = make_db(pg_server_url)
    seed_shop(source, rows=2_000)
    setup.env["SHOP_DSN"] = source
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text(CANARY)
    (tree / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    setup.write_registry(
        pg_app("shop")
        + files_app("uploads", tree, f'recipients = ["{own.recipient}"]\n')
        + command_app("notes", canary_code(100))
    )
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    assert all(
        str(uri).endswith(".zst.age")
        for (uri,) in setup.query("SELECT artifact_uri FROM backupctl.backups")
    )

    target = make_db(pg_server_url, create=False)
    db = setup.cli("restore", "shop", "--to", "env:T", "--identity", str(fleet.identity), T=target)
    assert db.returncode == 0, db.stderr
    assert fingerprint(target) == fingerprint(source)

    out = tmp_path / "notes.out"
    cmd = setup.cli(
        "restore", "notes", "--to", str(out), BACKUPCTL_IDENTITY_FILE=str(fleet.identity)
    )
    assert cmd.returncode == 0, cmd.stderr
    assert out.read_text() == (CANARY + " and some words\n") * 100

    # uploads went to its own recipient: the fleet's key does not open it...
    wrong = setup.cli(
        "restore", "uploads", "--to", str(tmp_path / "r1"), "--identity", str(fleet.identity)
    )
    assert wrong.returncode == 1
    ((uploads_id,),) = setup.query("SELECT id FROM backupctl.backups WHERE app_id = 'uploads'")
    assert wrong.stderr.splitlines()[-1] == (
        f"backupctl: error: restore failed: backup {uploads_id} of uploads: the identity in "
        f"{fleet.identity} does not decrypt it: it was encrypted to other recipients"
    )
    assert not (tmp_path / "r1").exists()
    # ...its own does.
    files = setup.cli(
        "restore", "uploads", "--to", str(tmp_path / "r2"), "--identity", str(own.identity)
    )
    assert files.returncode == 0, files.stderr
    assert (tmp_path / "r2" / "a.txt").read_text() == CANARY
    assert (tmp_path / "r2" / "sub" / "b.bin").read_bytes() == (tree / "sub" / "b.bin").read_bytes()

    # The identity's content is nowhere: not in output, not in the ledger.
    for result in (db, cmd, wrong, files):
        assert fleet.secret not in result.stdout + result.stderr
        assert own.secret not in result.stdout + result.stderr
    ledger_text = str(setup.query("SELECT * FROM backupctl.invocations")) + str(
        setup.query("SELECT * FROM backupctl.backups")
    )
    assert fleet.secret not in ledger_text and own.secret not in ledger_text


def test_restore_of_an_encrypted_backup_without_an_identity_is_exit_2(
    setup: Setup, key: Key, tmp_path: Path
) -> None:
    setup.env["BACKUPCTL_ENCRYPTION_RECIPIENTS"] = key.recipient
    setup.write_registry(command_app("notes", canary_code(10)))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    result = setup.cli("restore", "notes", "--to", str(tmp_path / "out"))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "restoring the latest nightly backup of notes: night 2026-11-28, backup 1",
        "backupctl: error: backup 1 of notes is encrypted: give --identity FILE "
        "(or BACKUPCTL_IDENTITY_FILE)",
    ]
    assert not (tmp_path / "out").exists()


def test_an_identity_file_others_can_read_is_warned_about_and_never_shown(
    setup: Setup, key: Key, tmp_path: Path
) -> None:
    setup.env["BACKUPCTL_ENCRYPTION_RECIPIENTS"] = key.recipient
    setup.write_registry(command_app("notes", canary_code(10)))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    key.identity.chmod(0o644)

    result = setup.cli("restore", "notes", "--to", "-", "--identity", str(key.identity))

    assert result.returncode == 0, result.stderr
    assert f"identity file {key.identity} can be read by others (mode 0644)" in result.stderr
    assert key.secret not in result.stderr + result.stdout

    broken = tmp_path / "broken.txt"
    broken.write_text(key.secret[:-3] + "\n")
    bad = setup.cli("restore", "notes", "--to", "-", "--identity", str(broken))
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        f"backupctl: error: --identity {broken}: line 1 is not an age identity "
        "(AGE-SECRET-KEY-1…; passphrase-protected and SSH keys are not supported)"
    )
    assert key.secret[:-3] not in bad.stderr


def no_ledger_tables(setup: Setup) -> bool:
    return not setup.query(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = 'backupctl'"
    )


@pytest.mark.parametrize("where", ["config", "env", "file", "registry"])
def test_a_recipient_that_does_not_parse_is_exit_2_before_the_ledger_is_touched(
    setup: Setup, key: Key, where: str
) -> None:
    bad = key.recipient[:-1] + ("q" if key.recipient[-1] != "q" else "p")  # checksum breaks
    registry = command_app("notes", canary_code(10))
    config = setup.root / "backupctl.toml"
    if where == "config":
        write_config(setup, f'[encryption]\nrecipients = ["{key.recipient}", "{bad}"]\n')
    elif where == "env":
        setup.env["BACKUPCTL_ENCRYPTION_RECIPIENTS"] = f"{key.recipient},{bad}"
    elif where == "file":
        (setup.root / "r.txt").write_text(f"{key.recipient}\n# next one is wrong\n{bad}\n")
        write_config(setup, '[encryption]\nrecipients_file = "r.txt"\n')
    else:
        registry = command_app("notes", canary_code(10), f'recipients = ["{bad}"]\n')
    setup.write_registry(registry)

    result = setup.cli("run-nightly", "--date", NIGHT)

    assert result.returncode == 2
    shown = repr(bad[:20] + "…")
    expected = {
        "config": f"{config}: [encryption] recipients: item 2: not an age recipient: {shown}",
        "env": f"BACKUPCTL_ENCRYPTION_RECIPIENTS: [encryption] recipients: item 2: "
        f"not an age recipient: {shown}",
        "file": f"{config}: [encryption] recipients_file: {setup.root / 'r.txt'}:3: "
        f"not an age recipient: {shown}",
        "registry": f"{setup.registry}:2: app 'notes': recipients: item 1: "
        f"not an age recipient: {shown}",
    }[where]
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) <= 2
    assert no_ledger_tables(setup)
    assert setup.files() == []


def test_verify_needs_no_key_and_verify_deep_decrypts_and_finds_a_flipped_byte(
    setup: Setup, key: Key
) -> None:
    setup.env["BACKUPCTL_ENCRYPTION_RECIPIENTS"] = key.recipient
    setup.write_registry(command_app("notes", canary_code()))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0

    plain = setup.cli("verify")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert plain.stdout.splitlines()[-1] == "verified 1 backup: all intact"

    no_key = setup.cli("verify", "--deep")
    assert no_key.returncode == 2
    assert no_key.stderr.splitlines() == [
        "backupctl: error: backup 1 of notes is encrypted: give --identity FILE "
        "(or BACKUPCTL_IDENTITY_FILE)"
    ]

    deep = setup.cli("verify", "--deep", "--identity", str(key.identity))
    assert deep.returncode == 0, deep.stdout + deep.stderr
    assert deep.stdout.splitlines()[-1] == "verified 1 backup: all intact"

    other = make_key(setup.root, "other.txt")
    wrong = setup.cli("verify", "--deep", BACKUPCTL_IDENTITY_FILE=str(other.identity))
    assert wrong.returncode == 1
    assert "does not decrypt it: it was encrypted to other recipients" in wrong.stdout

    path = artifact_path(setup, "notes")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    flipped = setup.cli("verify", "--deep", "--identity", str(key.identity))
    assert flipped.returncode == 1
    assert "FAILED" in flipped.stdout and "damaged or truncated" in flipped.stdout
    assert flipped.stdout.splitlines()[-1] == "verified 1 backup: 1 FAILED"


def test_what_the_age_tool_encrypted_restores_through_backupctl(
    setup: Setup, key: Key, tmp_path: Path
) -> None:
    age = need_tool("age", AGE)
    setup.env["BACKUPCTL_ENCRYPTION_RECIPIENTS"] = key.recipient
    setup.write_registry(command_app("notes", canary_code(10)))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    path = artifact_path(setup, "notes")
    # Replace the artifact by the age tool's encryption of the same zstd stream, and
    # point the ledger at its bytes: backupctl's reader must open what age wrote.
    zst = subprocess.run(
        [age, "-d", "-i", str(key.identity), str(path)], capture_output=True, check=True
    ).stdout
    subprocess.run(
        [age, "-r", key.recipient, "-o", str(path)], input=zst, capture_output=True, check=True
    )
    stored = path.read_bytes()
    setup.query(
        "UPDATE backupctl.backups SET sha256 = %s, size_bytes = %s WHERE app_id = 'notes'",
        hashlib.sha256(stored).hexdigest(),
        len(stored),
    )

    result = setup.cli("restore", "notes", "--to", "-", "--identity", str(key.identity))

    assert result.returncode == 0, result.stderr
    assert result.stdout == (CANARY + " and some words\n") * 10


def test_encrypted_backups_to_s3_restore_and_leave_no_orphans(
    setup: Setup, key: Key, s3: S3, tmp_path: Path
) -> None:
    setup.env.update(s3.env)
    setup.env["BACKUPCTL_STORAGE"] = f"s3://{s3.bucket}/nightly"
    setup.env["BACKUPCTL_ENCRYPTION_RECIPIENTS"] = key.recipient
    setup.write_registry(command_app("notes", canary_code()))
    assert setup.cli("run-nightly", "--date", NIGHT).returncode == 0
    (name,) = s3.keys()
    assert name == f"nightly/notes/{NIGHT}/notes-{NIGHT}-b1-a1.out.zst.age"
    body = s3.client.get_object(Bucket=s3.bucket, Key=name)["Body"].read()
    assert CANARY.encode() not in body

    restored = setup.cli("restore", "notes", "--to", "-", "--identity", str(key.identity))
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == (CANARY + " and some words\n") * 20_000

    orphans = setup.cli("verify", "--orphans", "--older-than", "0s")
    assert orphans.returncode == 0, orphans.stdout + orphans.stderr
    assert "no orphans" in orphans.stdout
