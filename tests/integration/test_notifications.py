"""The notifications ledger (migration 0010) and the Notifier against a real Postgres,
with Apprise's json:// posting to a local recording server."""

from __future__ import annotations

import logging
import threading
from datetime import date

import pytest

from backupctl.errors import LedgerUnavailable
from backupctl.ledger import Ledger, connect_ledger
from backupctl.notifications import Message, Notifier, url_hash
from tests.integration.conftest import sql
from tests.notify_server import SECRET_PATH, NotifyServer

NIGHT = date(2026, 11, 28)
HASH = url_hash("json://127.0.0.1:9/x")


def night(ledger: Ledger, run_date: date, **statuses: str) -> None:
    """Plan `run_date` with one app per keyword, set each row's status, close the night."""
    ledger.plan(run_date, sorted(statuses))
    for app_id, status in statuses.items():
        sql(
            ledger,
            "UPDATE backups SET status = %s, attempts = 1, error = %s, artifact_uri = 'x', "
            "sha256 = 'y' WHERE app_id = %s AND run_date = %s",
            [
                status,
                "pg_dump: password=hunter2 refused" if status == "failed" else None,
                app_id,
                run_date,
            ],
        )
    ledger.close_night(run_date)


def states(ledger: Ledger, run_date: date = NIGHT) -> list[tuple[str, str, int]]:
    return [(r["event"], r["status"], r["attempts"]) for r in ledger.night_notifications(run_date)]


def test_a_notification_is_claimed_once_and_a_sent_one_never_again(ledger: Ledger) -> None:
    assert ledger.claim_notification(NIGHT, "failure", HASH, "a", 600)
    assert not ledger.claim_notification(NIGHT, "failure", HASH, "b", 600)
    # The same claim run again (its answer was lost) gets it back, costing no attempt.
    assert ledger.claim_notification(NIGHT, "failure", HASH, "a", 600)
    # Other events, nights and URLs are claims of their own.
    assert ledger.claim_notification(NIGHT, "warning", HASH, "b", 600)
    assert ledger.claim_notification(NIGHT, "failure", url_hash("other://"), "b", 600)

    assert not ledger.finish_notification(NIGHT, "failure", HASH, "b", sent=True)  # not b's
    assert ledger.finish_notification(NIGHT, "failure", HASH, "a", sent=True)
    assert not ledger.claim_notification(NIGHT, "failure", HASH, "c", 0)
    assert states(ledger)[0] == ("failure", "sent", 1)


def test_a_failed_send_is_taken_by_the_next_sender(ledger: Ledger) -> None:
    assert ledger.claim_notification(NIGHT, "missed", HASH, "a", 600)
    assert ledger.finish_notification(NIGHT, "missed", HASH, "a", sent=False, error="HTTP 500")
    rows = ledger.night_notifications(NIGHT)
    assert (rows[0]["status"], rows[0]["error"]) == ("failed", "HTTP 500")

    assert ledger.claim_notification(NIGHT, "missed", HASH, "b", 600)
    assert ledger.finish_notification(NIGHT, "missed", HASH, "b", sent=True)
    assert states(ledger) == [("missed", "sent", 2)]


def test_a_claim_whose_sender_died_is_taken_over_only_after_a_while(ledger: Ledger) -> None:
    assert ledger.claim_notification(NIGHT, "failure", HASH, "dead", 600)
    assert not ledger.claim_notification(NIGHT, "failure", HASH, "b", 600)
    sql(ledger, "UPDATE notifications SET claimed_at = now() - interval '11 minutes'")

    assert ledger.claim_notification(NIGHT, "failure", HASH, "b", 600)
    # The dead sender, come back, can no longer mark it.
    assert not ledger.finish_notification(NIGHT, "failure", HASH, "dead", sent=True)
    assert states(ledger) == [("failure", "sending", 2)]


def test_many_senders_at_once_make_one_claim(database_url: str) -> None:
    ledgers = [connect_ledger(database_url, "backupctl") for _ in range(6)]
    won: list[bool] = []
    start = threading.Barrier(len(ledgers))

    def claim(led: Ledger, owner: str) -> None:
        start.wait()
        won.append(led.claim_notification(NIGHT, "failure", HASH, owner, 600))

    threads = [
        threading.Thread(target=claim, args=(led, f"owner-{i}")) for i, led in enumerate(ledgers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for led in ledgers:
        led.close()
    assert sorted(won) == [False] * 5 + [True]


def test_the_schema_refuses_an_unknown_event_and_a_sent_row_without_a_time(
    ledger: Ledger,
) -> None:
    with pytest.raises(LedgerUnavailable, match="notifications_event_check"):
        sql(
            ledger,
            "INSERT INTO notifications (run_date, event, url_hash, status, claimed_by) "
            "VALUES ('2026-11-28', 'nosuch', 'h', 'sending', 'a')",
        )
    with pytest.raises(LedgerUnavailable, match="notifications_check"):
        sql(
            ledger,
            "INSERT INTO notifications (run_date, event, url_hash, status, claimed_by) "
            "VALUES ('2026-11-28', 'failure', 'h', 'sent', 'a')",
        )


def before(ledger: Ledger, run_date: date) -> tuple[str, bool] | None:
    row = ledger.night_before(run_date)
    return None if row is None else (str(row["status"]), bool(row["bad"]))


def test_the_night_before_is_bad_when_it_failed_was_missed_or_its_failure_was_told(
    ledger: Ledger,
) -> None:
    night(ledger, date(2026, 11, 25), a="succeeded")
    night(ledger, date(2026, 11, 27), a="failed")  # 11-26 is now missed
    assert before(ledger, date(2026, 11, 25)) is None
    assert before(ledger, date(2026, 11, 26)) == ("complete", False)
    assert before(ledger, date(2026, 11, 27)) == ("missed", True)
    assert before(ledger, NIGHT) == ("incomplete", True)
    # Retried to complete, the night still failed if its failure was told.
    sql(ledger, "UPDATE backups SET status = 'succeeded' WHERE run_date = '2026-11-27'")
    ledger.close_night(date(2026, 11, 27))
    assert before(ledger, NIGHT) == ("complete", False)
    ledger.claim_notification(date(2026, 11, 27), "failure", HASH, "a", 600)
    assert before(ledger, NIGHT) == ("complete", True)


def test_the_notifier_sends_each_event_once_through_apprise(ledger: Ledger) -> None:
    night(ledger, NIGHT, shop="failed", wiki="succeeded")
    with NotifyServer() as server:
        notifier = Notifier([server.url], ("failure", "missed", "recovered"), host="db1")
        told = notifier.tell(ledger, NIGHT)
        assert [(t.event, t.sent) for t in told] == [("failure", True)]
        assert told[0].url == f"json://127.0.0.1:{server.port}/…"
        assert notifier.tell(ledger, NIGHT) == []
        assert notifier.tell(ledger, NIGHT, window_closed=True) == []

    assert server.paths == [SECRET_PATH]
    post = server.posts[0]
    assert post["title"] == f"backupctl: 1 of 2 apps failed on {NIGHT} (db1)"
    assert "- shop: failed after 1 attempt: pg_dump: password=*** refused" in post["message"]
    assert post["type"] == "failure"


def test_a_sender_that_fails_or_raises_is_a_warning_and_left_for_the_next(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    night(ledger, NIGHT, shop="failed")
    url = "json://127.0.0.1:9/hooks/5ecret-token-0123456789"

    def refuses(_url: str, _message: Message) -> str | None:
        return f"could not reach {_url}"

    def raises(_url: str, _message: Message) -> str | None:
        raise RuntimeError("plugin bug")

    with caplog.at_level(logging.WARNING, logger="backupctl"):
        assert not Notifier([url], sender=refuses).tell(ledger, NIGHT)[0].sent
        assert not Notifier([url], sender=raises).tell(ledger, NIGHT)[0].sent
    assert states(ledger) == [("failure", "failed", 2)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "json://127.0.0.1:9/…" in warnings[0] and "5ecret" not in " ".join(warnings)
    assert "plugin bug" in warnings[1]
    assert "5ecret" not in str(ledger.night_notifications(NIGHT))


def test_a_ledger_that_is_gone_is_a_warning_not_an_error(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    led = connect_ledger(database_url, "backupctl")
    night(led, NIGHT, shop="failed")
    sql(led, "DROP TABLE notifications")
    with caplog.at_level(logging.WARNING, logger="backupctl"):
        assert Notifier(["json://127.0.0.1:9/x"]).tell(led, NIGHT) == []
    led.close()
    assert any("not sent" in r.getMessage() for r in caplog.records)
