"""prune marks rows pruned and deletes their artifacts a batch at a time: one
statement and one storage call per batch, never a round trip per backup."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

import backupctl.retention as retention
from backupctl.ledger import Ledger
from backupctl.storage import Storages
from backupctl.storage.local import LocalStorage

FIRST = date(2026, 11, 1)
NIGHTS = [FIRST + timedelta(days=d) for d in range(7)]
POLICY = {"keep_daily": 2, "keep_weekly": 0, "keep_monthly": 0}


def back_up(ledger: Ledger, root: Path, apps: Sequence[str]) -> None:
    """Every night of NIGHTS, each app backed up to a file under `root`."""
    storage = LocalStorage(root)
    for night in NIGHTS:
        ledger.plan(night, list(apps))
        for claim in ledger.claim_nightly(night, "p", 100, 60, 3):
            key = f"{claim.app_id}/{night}/{claim.app_id}-{night}-b{claim.id}-a1.out.zst"
            with storage.open_write(key) as upload:
                upload.write(b"x")
            ledger.finish_succeeded(claim, "p", storage.uri(key), 1, "aa")


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_prune_takes_a_statement_and_a_storage_call_per_batch(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    back_up(ledger, tmp_path, ["shop", "wiki"])
    monkeypatch.setattr(retention, "BATCH", 4)  # 10 backups to prune: batches of 4, 4, 2
    marked: list[int] = []
    deleted: list[int] = []
    real_mark, real_delete = ledger.mark_pruned, LocalStorage.delete_many

    def mark(ids: Any) -> set[int]:
        ids = list(ids)
        marked.append(len(ids))
        return real_mark(ids)

    def delete_many(self: LocalStorage, keys: Sequence[str]) -> dict[str, str]:
        deleted.append(len(keys))
        return real_delete(self, keys)

    monkeypatch.setattr(ledger, "mark_pruned", mark)
    monkeypatch.setattr(LocalStorage, "delete_many", delete_many)

    report = retention.prune(ledger, Storages(tmp_path.as_uri()), POLICY, dry_run=False)

    assert (len(report.pruned), report.kept, report.errors) == (10, 4, [])
    assert marked == [4, 4, 2] and deleted == [4, 4, 2]
    kept_nights = {str(n) for n in NIGHTS[-2:]}
    assert {f.split("/")[1] for f in files(tmp_path)} == kept_nights
    rows = ledger.nightly_succeeded_by_app()
    assert {str(r["run_date"]) for r in rows} == kept_nights


def test_a_row_another_process_changed_meanwhile_keeps_its_file(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    back_up(ledger, tmp_path, ["shop"])
    real_mark = ledger.mark_pruned
    [oldest] = [r for r in ledger.nightly_succeeded_by_app() if r["run_date"] == FIRST]

    def mark(ids: Any) -> set[int]:
        # Another process got to the oldest row between prune's look and its mark.
        ledger.connector.run(
            lambda conn: conn.execute(
                "UPDATE backups SET status = 'failed' WHERE id = %s", [oldest["id"]]
            )
        )
        return real_mark(ids)

    monkeypatch.setattr(ledger, "mark_pruned", mark)

    report = retention.prune(ledger, Storages(tmp_path.as_uri()), POLICY, dry_run=False)

    assert len(report.pruned) == 5 and report.errors == []
    assert [f.split("/")[1] for f in files(tmp_path)] == [str(FIRST), *map(str, NIGHTS[-2:])]
