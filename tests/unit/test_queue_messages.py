"""Queue messages carry references only: an app id, a night and a backup id."""

from __future__ import annotations

import json
from datetime import date

import pytest

from backupctl.queue import Job, PoisonMessage, parse_job


def test_a_job_round_trips_through_its_message_body() -> None:
    job = Job("shop", date(2026, 11, 28), 17)
    body = job.body()
    assert json.loads(body) == {"v": 1, "app_id": "shop", "run_date": "2026-11-28", "backup_id": 17}
    assert parse_job(body) == job


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"v": 2, "app_id": "shop", "run_date": "2026-11-28", "backup_id": 1}', "version 2"),
        ('{"app_id": "shop", "run_date": "2026-11-28", "backup_id": 1}', "version None"),
        (
            '{"v": 1, "app_id": "shop", "run_date": "2026-11-28", "backup_id": 1,'
            ' "argv": ["rm", "-rf", "/"]}',
            "unexpected fields",
        ),
        ('{"v": 1, "app_id": "../etc", "run_date": "2026-11-28", "backup_id": 1}', "app id"),
        ('{"v": 1, "app_id": "shop", "run_date": "yesterday", "backup_id": 1}', "run date"),
        ('{"v": 1, "app_id": "shop", "run_date": "2026-11-28", "backup_id": "1"}', "backup id"),
        ('{"v": 1, "app_id": "shop", "run_date": "2026-11-28", "backup_id": true}', "backup id"),
        ('{"v": 1, "app_id": "shop", "run_date": "2026-11-28", "backup_id": 0}', "backup id"),
    ],
)
def test_anything_but_a_well_formed_v1_job_is_poison(body: str, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        parse_job(body)
