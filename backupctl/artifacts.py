"""Where an artifact lives: <app>/<run_date>/<name> (nightly) or <app>/adhoc/<name>.

The name carries the backup id and the attempt, so two attempts never write the
same key and a leftover of an earlier attempt can be found and removed.
"""

from __future__ import annotations

from backupctl.ledger import Claim


def attempt_prefix(claim: Claim) -> str:
    """The key prefix shared by every attempt of this backup."""
    folder = claim.run_date.isoformat() if claim.trigger == "nightly" else "adhoc"
    return f"{claim.app_id}/{folder}/{claim.app_id}-{claim.run_date.isoformat()}-b{claim.id}-a"


def artifact_key(claim: Claim, extension: str) -> str:
    """The key this attempt publishes to, e.g. shop/2026-11-29/shop-2026-11-29-b17-a1.tar.zst."""
    return f"{attempt_prefix(claim)}{claim.attempt}.{extension}.zst"


def attempts_up_to(claim: Claim) -> list[str]:
    """Key prefixes of this attempt and every earlier one, never a later one: a later
    attempt belongs to whoever holds the row after us and must not be touched."""
    return [f"{attempt_prefix(claim)}{n}." for n in range(1, claim.attempt + 1)]
