"""Secrets never reach output: URL passwords, password=... pairs and known values are masked."""

from __future__ import annotations

import pytest

from backupctl.redact import MASK, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:s3cret@db.internal/app", "postgresql://bob:***@db.internal/app"),
        (
            "postgresql://bob:s3cret@db.internal:5432/app?sslmode=require",
            "postgresql://bob:***@db.internal:5432/app?sslmode=require",
        ),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://bob:p%40ss@db/app", "postgresql://bob:***@db/app"),
        ("postgresql://bob:p@ss@db/app", "postgresql://bob:***@db/app"),
    ],
)
def test_redact_url_masks_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob@db.internal/app",
        "postgresql:///app?host=/run/postgresql",
        "s3://acme-backups/nightly",
        "file:///var/backups/backupctl",
    ],
)
def test_redact_url_leaves_a_url_without_password_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_redact_url_masks_a_password_in_the_query_string() -> None:
    assert redact_url("postgresql://db/app?user=bob&password=s3cret") == (
        "postgresql://db/app?user=bob&password=***"
    )


def test_redact_text_masks_every_url_password_in_a_message() -> None:
    text = "cannot reach postgresql://bob:s3cret@db/app nor redis://:hunter2@cache:6379/0"

    assert redact_text(text) == (
        "cannot reach postgresql://bob:***@db/app nor redis://:***@cache:6379/0"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("host=db password=s3cret user=bob", "host=db password=*** user=bob"),
        ("host=db password='with space' user=bob", "host=db password=*** user=bob"),
        ("host=db PASSWORD = s3cret", "host=db PASSWORD = ***"),
        ("passwd=s3cret", "passwd=***"),
        ("pwd=s3cret", "pwd=***"),
        ("secret=s3cret", "secret=***"),
        ("https://api.example/?token=abc123&page=2", "https://api.example/?token=***&page=2"),
    ],
)
def test_redact_text_masks_password_key_value_pairs(text: str, shown: str) -> None:
    assert redact_text(text) == shown


def test_redact_text_masks_explicit_secrets_wherever_they_appear() -> None:
    text = "pg_dump: error: authentication failed for AKIAEXAMPLEKEY (AKIAEXAMPLEKEY)"

    assert redact_text(text, ["AKIAEXAMPLEKEY"]) == (
        "pg_dump: error: authentication failed for *** (***)"
    )


def test_redact_text_ignores_empty_and_very_short_secrets() -> None:
    # Masking "" or "ab" would shred ordinary words; such values are not treated as secrets.
    assert redact_text("a table and a tab", ["", "ab"]) == "a table and a tab"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pg_dump exited with status 1: relation does not exist",
        "backed up shop to s3://acme-backups/nightly/shop/2026-01-01 in 3m05s",
        "host=db user=bob dbname=app",
        "postgresql://bob@db.internal/app",
        "the password is stored in SHOP_DATABASE_URL",
    ],
)
def test_redact_text_leaves_text_without_secrets_unchanged(text: str) -> None:
    assert redact_text(text) == text


def test_mask_is_three_stars() -> None:
    assert MASK == "***"


def test_redact_text_masks_a_url_password_containing_an_at_sign() -> None:
    assert redact_text("cannot reach postgresql://bob:p@ss@db/app") == (
        "cannot reach postgresql://bob:***@db/app"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("PGPASSWORD=s3cret pg_dump app", "PGPASSWORD=*** pg_dump app"),
        ("client_secret=s3cret", "client_secret=***"),
        ("access_token=s3cret", "access_token=***"),
    ],
)
def test_redact_text_masks_prefixed_password_variables(text: str, shown: str) -> None:
    assert redact_text(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("AWS_SECRET_ACCESS_KEY=abc123", "AWS_SECRET_ACCESS_KEY=***"),
        ("aws_secret_access_key = abc123", "aws_secret_access_key = ***"),
        ("GET /o?X-Amz-Signature=deadbeef&x=1", "GET /o?X-Amz-Signature=***&x=1"),
        ('{"password": "hunter2"}', '{"password": ***}'),
        ("password: hunter2", "password: ***"),
    ],
)
def test_redact_text_masks_aws_keys_signatures_and_json_or_yaml_passwords(
    text: str, shown: str
) -> None:
    assert redact_text(text) == shown
