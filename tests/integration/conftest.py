"""The integration tests' ledger: a real Postgres, migrated, one per test."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest

from backupctl.ledger import Ledger, connect_ledger


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    led = connect_ledger(database_url, "backupctl")
    yield led
    led.close()


def sql(ledger: Ledger, query: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    """Run one statement of the test's own on the ledger's connections."""

    def work(conn: psycopg.Connection[dict[str, Any]]) -> list[dict[str, Any]]:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []

    return ledger.connector.run(work)
