"""The Prometheus textfile: written atomically, parsed back, values from real ledger rows."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backupctl.ledger import Ledger
from backupctl.monitoring import write_metrics

NIGHT = date(2026, 11, 28)
NIGHT_TS = datetime(2026, 11, 28, tzinfo=UTC).timestamp()
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def read_metrics(path: Path) -> tuple[Samples, dict[str, str]]:
    """The file's samples by (name, sorted labels), and each family's type."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(path.read_text()):
        types[family.name] = family.type
        assert family.documentation, f"{family.name} has no HELP text"
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def by_label(samples: Samples, name: str) -> dict[str, float]:
    """One labelled metric as {label value: sample value}."""
    return {labels[0][1]: v for (n, labels), v in samples.items() if n == name and labels}


def one(samples: Samples, name: str) -> float:
    return samples[(name, ())]


def row(app: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"app_id": app, "status": status, "trigger": "nightly", "attempts": 1, **extra}


def test_metrics_from_plain_data(tmp_path: Path) -> None:
    path = tmp_path / "backupctl.prom"
    shop_done = datetime(2026, 11, 28, 1, 30, tzinfo=UTC)
    wiki_done = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    rows = [
        row("shop", "succeeded", duration_s=Decimal("12.5"), size_bytes=4096),
        row("wiki", "failed", attempts=3, duration_s=Decimal("3.0"), size_bytes=None),
        row("crm", "pending", duration_s=None, size_bytes=None),
        row("mail", "running", duration_s=None, size_bytes=None),
    ]
    last = {
        "shop": {"finished_at": shop_done, "size_bytes": 4096, "duration_s": 12.5},
        "wiki": {"finished_at": wiki_done, "size_bytes": 100, "duration_s": 1.0},
    }
    assert write_metrics(
        path,
        run_date=NIGHT,
        night_rows=rows,
        last_successes=last,
        night_status="running",
        app_ids=["shop", "wiki", "crm", "mail", "new-app"],
        now=1_800_000_000.0,
    )
    samples, types = read_metrics(path)

    assert set(types.values()) == {"gauge"}
    assert by_label(samples, "backupctl_last_success_timestamp_seconds") == {
        "shop": shop_done.timestamp(),
        "wiki": wiki_done.timestamp(),
        "crm": 0,
        "mail": 0,
        "new-app": 0,
    }
    assert by_label(samples, "backupctl_backups") == {
        "pending": 1,
        "enqueued": 0,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "pruned": 0,
        "skipped": 0,
    }
    # Only the night's succeeded backups have a duration and a size.
    assert by_label(samples, "backupctl_backup_duration_seconds") == {"shop": 12.5}
    assert by_label(samples, "backupctl_backup_size_bytes") == {"shop": 4096}
    assert one(samples, "backupctl_night_timestamp_seconds") == NIGHT_TS
    assert one(samples, "backupctl_night_complete") == 0
    assert by_label(samples, "backupctl_night_status") == {
        "running": 1,
        "complete": 0,
        "incomplete": 0,
        "missed": 0,
    }
    assert one(samples, "backupctl_metrics_written_timestamp_seconds") == 1_800_000_000.0
    assert ("backupctl_last_complete_night_timestamp_seconds", ()) not in samples
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backupctl.prom"]


def test_an_empty_night_still_has_every_status(tmp_path: Path) -> None:
    path = tmp_path / "backupctl.prom"
    assert write_metrics(
        str(path), run_date=NIGHT, night_rows=[], last_successes={}, night_status=None
    )
    samples, _ = read_metrics(path)
    assert set(by_label(samples, "backupctl_backups").values()) == {0}
    assert len(by_label(samples, "backupctl_backups")) == 7
    assert by_label(samples, "backupctl_last_success_timestamp_seconds") == {}
    assert one(samples, "backupctl_night_complete") == 0
    assert set(by_label(samples, "backupctl_night_status").values()) == {0}


def test_metrics_from_a_real_ledger(ledger: Ledger, tmp_path: Path) -> None:
    apps = ["alpha", "beta", "gamma"]
    ledger.plan(NIGHT, apps)
    claims = {c.app_id: c for c in ledger.claim_nightly(NIGHT, "me", 10, 60.0, 1)}
    assert ledger.finish_succeeded(claims["alpha"], "me", "file:///a", 1234, "ab" * 32)
    assert ledger.finish_failed(claims["beta"], "me", "boom", 0.0, 0.0)
    # gamma stays running.
    night = ledger.close_night(NIGHT)
    assert night is not None and night.status == "running"

    path = tmp_path / "backupctl.prom"
    rows = ledger.night_backups(NIGHT)
    last = ledger.last_successes(apps)
    assert write_metrics(
        path,
        run_date=NIGHT,
        night_rows=rows,
        last_successes=last,
        night_status=night.status,
        app_ids=apps,
        nights=ledger.list_nights(7),
    )
    samples, _ = read_metrics(path)

    alpha = next(r for r in rows if r["app_id"] == "alpha")
    assert by_label(samples, "backupctl_last_success_timestamp_seconds") == {
        "alpha": pytest.approx(last["alpha"]["finished_at"].timestamp()),
        "beta": 0,
        "gamma": 0,
    }
    assert by_label(samples, "backupctl_backups") == {
        "pending": 0,
        "enqueued": 0,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "pruned": 0,
        "skipped": 0,
    }
    assert by_label(samples, "backupctl_backup_size_bytes") == {"alpha": 1234}
    assert by_label(samples, "backupctl_backup_duration_seconds") == {
        "alpha": pytest.approx(float(alpha["duration_s"]))
    }
    assert one(samples, "backupctl_night_complete") == 0
    assert one(samples, "backupctl_last_complete_night_timestamp_seconds") == 0

    # The rest of the night succeeds: the file is replaced and the night is complete.
    retry = {c.app_id: c for c in ledger.claim_nightly(NIGHT, "me", 10, 60.0, 2)}
    assert ledger.finish_succeeded(retry["beta"], "me", "file:///b", 10, "cd" * 32)
    assert ledger.finish_succeeded(claims["gamma"], "me", "file:///c", 20, "ef" * 32)
    night = ledger.close_night(NIGHT)
    assert night is not None and night.status == "complete"
    assert write_metrics(
        path,
        run_date=NIGHT,
        night_rows=ledger.night_backups(NIGHT),
        last_successes=ledger.last_successes(apps),
        night_status=night.status,
        nights=ledger.list_nights(7),
    )
    samples, _ = read_metrics(path)
    assert by_label(samples, "backupctl_backup_size_bytes") == {
        "alpha": 1234,
        "beta": 10,
        "gamma": 20,
    }
    assert all(
        v > 0 for v in by_label(samples, "backupctl_last_success_timestamp_seconds").values()
    )
    assert by_label(samples, "backupctl_backups")["succeeded"] == 3
    assert one(samples, "backupctl_night_complete") == 1
    assert by_label(samples, "backupctl_night_status")["complete"] == 1
    assert one(samples, "backupctl_last_complete_night_timestamp_seconds") == NIGHT_TS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backupctl.prom"]


def test_apps_that_left_the_registry_get_no_last_success_not_even_zero(tmp_path: Path) -> None:
    path = tmp_path / "backupctl.prom"
    done = datetime(2026, 11, 28, 1, 30, tzinfo=UTC)
    rows = [row("shop", "succeeded", size_bytes=10), row("gone", "failed"), row("old", "skipped")]
    last = {"shop": {"finished_at": done}, "gone": {"finished_at": done}}

    # The registry's enabled apps: shop, and new (never backed up yet).
    assert write_metrics(
        path,
        run_date=NIGHT,
        night_rows=rows,
        last_successes=last,
        night_status="incomplete",
        app_ids=["shop", "new"],
    )
    samples, _ = read_metrics(path)
    assert by_label(samples, "backupctl_last_success_timestamp_seconds") == {
        "shop": done.timestamp(),
        "new": 0,
    }

    # Without the registry's apps, the night's planned ones (a skipped row's app had left).
    assert write_metrics(
        path, run_date=NIGHT, night_rows=rows, last_successes=last, night_status="incomplete"
    )
    samples, _ = read_metrics(path)
    assert by_label(samples, "backupctl_last_success_timestamp_seconds") == {
        "shop": done.timestamp(),
        "gone": done.timestamp(),
    }


@pytest.mark.parametrize("where", ["missing-dir/backupctl.prom", "a-directory"])
def test_a_metrics_file_that_cannot_be_written_logs_a_warning_and_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    (tmp_path / "a-directory").mkdir()
    kwargs: Mapping[str, Any] = {"night_rows": [], "last_successes": {}, "night_status": None}
    with caplog.at_level(logging.WARNING, logger="backupctl.monitoring"):
        assert not write_metrics(tmp_path / where, run_date=NIGHT, **kwargs)
    (record,) = caplog.records
    assert "could not write metrics" in record.getMessage()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-directory"]
    assert list((tmp_path / "a-directory").iterdir()) == []
