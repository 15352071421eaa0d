"""Where an artifact lives: <app>/<run_date>/<name> (nightly) or <app>/adhoc/<name>.

The name carries the backup id and the attempt, so two attempts never write the
same key and a leftover of an earlier attempt can be found and removed.
"""

from __future__ import annotations

import re

from backupctl.ledger import Claim

ENCRYPTED_SUFFIX = ".age"

# <app>/<YYYY-MM-DD | adhoc>/<app>-<YYYY-MM-DD>-b<id>-a<attempt>.<ext>.zst (+ .age when
# encrypted), or a temporary name of one: .<that name>.<random>.tmp in the same folder.
_ARTIFACT = re.compile(
    r"^(?P<app>[a-z0-9][a-z0-9._-]{0,127})/(?:\d{4}-\d{2}-\d{2}|adhoc)/"
    r"(?P<tmp>\.)?(?P=app)-\d{4}-\d{2}-\d{2}-b(?P<id>\d+)-a\d+\.[a-z0-9]+\.zst(?:\.age)?"
    r"(?(tmp)\.[0-9a-f]+\.tmp)$"
)


def attempt_prefix(claim: Claim) -> str:
    """The key prefix shared by every attempt of this backup."""
    folder = claim.run_date.isoformat() if claim.trigger == "nightly" else "adhoc"
    return f"{claim.app_id}/{folder}/{claim.app_id}-{claim.run_date.isoformat()}-b{claim.id}-a"


def artifact_key(claim: Claim, extension: str, *, encrypted: bool = False) -> str:
    """The key this attempt publishes to, e.g. shop/2026-11-29/shop-2026-11-29-b17-a1.tar.zst
    (with `.age` appended when it is encrypted)."""
    return f"{attempt_prefix(claim)}{claim.attempt}.{extension}.zst" + (
        ENCRYPTED_SUFFIX if encrypted else ""
    )


def attempts_up_to(claim: Claim) -> list[str]:
    """Key prefixes of this attempt and every earlier one, never a later one: a later
    attempt belongs to whoever holds the row after us and must not be touched."""
    return [f"{attempt_prefix(claim)}{n}." for n in range(1, claim.attempt + 1)]


def parse_artifact_key(key: str) -> tuple[str, int] | None:
    """The app id and backup id in an artifact's key (or its temporary file's), or
    None for a key that is not backupctl's (which nothing here ever deletes)."""
    match = _ARTIFACT.match(key)
    return (match.group("app"), int(match.group("id"))) if match else None
